// Table-driven bad-input tests: one table per reader and one for the command line. Each case
// names what it breaks and the message it expects; every refusal must also name the file (or
// flag) and show no library internals (JSON library codes, stod, stream errors, torch messages).
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <functional>

#include <opencv2/imgcodecs.hpp>
#include <torch/torch.h>

#include "drifa/data/csv.h"
#include "drifa/data/dataset.h"
#include "drifa/data/image.h"
#include "drifa/data/sources.h"
#include "drifa/error.h"
#include "drifa/io/config_file.h"
#include "drifa/runs/model_file.h"
#include "drifa/io/safetensors.h"
#include "drifa/runs/run_config.h"
#include "drifa/runs/files.h"
#include "drifa/runs/run_folder.h"
#include "test_helpers.h"

using namespace drifa;
namespace fs = std::filesystem;
using test::TempDir;

namespace {

// What a message must never show: the words of the libraries underneath instead of the problem.
const char* kInternals[] = {"json.exception", "type_error.", "parse_error.", "out_of_range.", "stod", "stoi", "stoul",
                            "basic_ios", "basic_filebuf", "std::", "c10::", "torch.cat", "index out of bounds",
                            "terminate called", "Assertion", "bad_alloc", "Segmentation", "Aborted"};

void expect_clean_message(const std::string& name, const std::string& msg) {
  for (const char* bad : kInternals) EXPECT_EQ(msg.find(bad), std::string::npos) << name << ": internals in: " << msg;
}

struct ReaderCase {
  std::string name;    // what the case breaks
  std::function<void()> read;
  std::string expect;  // a part of the message
  std::string names;   // the file (or key) the message must name
};

// Runs every case; returns how many ran (the closing note counts them).
int run_cases(const std::vector<ReaderCase>& cases) {
  for (const auto& c : cases) {
    std::string msg;
    try {
      c.read();
      ADD_FAILURE() << c.name << ": accepted (expected '" << c.expect << "')";
      continue;
    } catch (const Error& e) {
      msg = e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << c.name << ": an exception other than drifa::Error: " << e.what();
      continue;
    }
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.name << ": expected '" << c.expect << "' in: " << msg;
    EXPECT_NE(msg.find(c.names), std::string::npos) << c.name << ": the message does not name '" << c.names << "': " << msg;
    expect_clean_message(c.name, msg);
  }
  return static_cast<int>(cases.size());
}

std::string header_only(const std::string& json) {
  std::string out(8, '\0');
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + json;
}

ModelConfig tiny_model() {
  ModelConfig c;
  c.widths = {8, 8, 16, 16};
  c.image_size = 32;
  c.classes = {2, 3};
  c.modality_names = {"a", "b"};
  c.task_names = {"a", "b"};
  return c;
}

// ---- DICOM by hand: explicit VR little endian, one 16-bit frame --------------------------
std::string u16(uint16_t v) { return {char(v & 0xff), char(v >> 8)}; }
std::string u32(uint32_t v) { return u16(uint16_t(v & 0xffff)) + u16(uint16_t(v >> 16)); }
std::string element(uint16_t g, uint16_t e, const char* vr, const std::string& value) {
  std::string v = value;
  if (v.size() % 2) v += (std::string(vr) == "UI" ? '\0' : ' ');
  const std::string vrs(vr);
  if (vrs == "OB" || vrs == "OW") return u16(g) + u16(e) + vrs + std::string(2, '\0') + u32(uint32_t(v.size())) + v;
  return u16(g) + u16(e) + vrs + u16(uint16_t(v.size())) + v;
}
std::string dicom(uint16_t rows, uint16_t cols, uint32_t declared, size_t present) {
  const std::string meta = element(0x0002, 0x0001, "OB", std::string("\0\1", 2)) + element(0x0002, 0x0002, "UI", "1.2.840.10008.5.1.4.1.1.7") +
                           element(0x0002, 0x0003, "UI", "1.2.3.4") + element(0x0002, 0x0010, "UI", "1.2.840.10008.1.2.1");
  std::string out(128, '\0');
  out += "DICM" + element(0x0002, 0x0000, "UL", u32(uint32_t(meta.size()))) + meta;
  out += element(0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.7") + element(0x0008, 0x0018, "UI", "1.2.3.4");
  out += element(0x0028, 0x0002, "US", u16(1)) + element(0x0028, 0x0004, "CS", "MONOCHROME2");
  out += element(0x0028, 0x0010, "US", u16(rows)) + element(0x0028, 0x0011, "US", u16(cols));
  out += element(0x0028, 0x0100, "US", u16(16)) + element(0x0028, 0x0101, "US", u16(16)) + element(0x0028, 0x0102, "US", u16(15)) +
         element(0x0028, 0x0103, "US", u16(0));
  out += u16(0x7fe0) + u16(0x0010) + "OW" + std::string(2, '\0') + u32(declared);
  std::string pixels(present, '\0');
  for (size_t i = 0; i < present; ++i) pixels[i] = char(i * 7);
  return out + pixels;
}

std::string tiff_header(uint32_t w, uint32_t h) {
  return std::string("II*\0", 4) + u32(8) + u16(2) + u16(256) + u16(4) + u32(1) + u32(w) + u16(257) + u16(4) + u32(1) + u32(h) + u32(0);
}

// A grey side x side TIFF whose one strip starts after the directory and declares side*side
// bytes, of which only `present` are in the file.
std::string tiff_strip(uint32_t side, uint32_t present) {
  const uint32_t data_at = 8 + 2 + 4 * 12 + 4;
  return std::string("II*\0", 4) + u32(8) + u16(4) + u16(256) + u16(4) + u32(1) + u32(side) + u16(257) + u16(4) + u32(1) +
         u32(side) + u16(273) + u16(4) + u32(1) + u32(data_at) + u16(279) + u16(4) + u32(1) + u32(side * side) + u32(0) +
         std::string(present, '\x40');
}

// The PNG with one byte of its first IDAT chunk's data changed (its CRC no longer matches).
std::string png_with_damaged_idat(std::string png) {
  const auto at = png.find("IDAT");
  png[at + 4 + 2] = static_cast<char>(png[at + 4 + 2] ^ 0x55);
  return png;
}

std::string png_bytes(int side) {
  cv::Mat m(side, side, CV_8UC3, cv::Scalar(10, 200, 30));
  std::vector<uchar> buf;
  cv::imencode(".png", m, buf);
  return {buf.begin(), buf.end()};
}

std::string jpeg_bytes(int side) {
  cv::Mat m(side, side, CV_8UC3);
  cv::randu(m, 0, 255);
  std::vector<uchar> buf;
  cv::imencode(".jpg", m, buf);
  return {buf.begin(), buf.end()};
}

}  // namespace

TEST(BadInput, SafetensorsReader) {
  auto dec = [](std::string bytes) { return [bytes] { io::decode_safetensors(bytes, "bad.safetensors"); }; };
  const std::string f = R"("dtype":"F32","shape":[1],"data_offsets":[0,4])";
  const std::vector<ReaderCase> cases = {
      {"empty file", dec(""), "truncated (0 bytes", "bad.safetensors"},
      {"7 bytes", dec("1234567"), "truncated (7 bytes", "bad.safetensors"},
      {"header length past the end", dec(std::string(8, '\xff') + "{}"), "larger than the file", "bad.safetensors"},
      {"header is not JSON", dec(header_only("{not json")), "malformed JSON", "bad.safetensors"},
      {"header is a list", dec(header_only("[1,2]")), "not a JSON object", "bad.safetensors"},
      {"duplicate tensor name", dec(header_only(R"({"a":{)" + f + R"(},"a":{)" + f + "}}") + "xxxx"), "duplicate key \"a\"", "bad.safetensors"},
      {"empty tensor name", dec(header_only(R"({"":{)" + f + "}}") + "xxxx"), "tensor name is empty", "bad.safetensors"},
      {"unknown dtype", dec(header_only(R"({"a":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}})") + "xxxx"), "unsupported dtype", "bad.safetensors"},
      {"negative dimension", dec(header_only(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})") + "xxxx"), "negative", "bad.safetensors"},
      {"fractional dimension", dec(header_only(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})") + "xxxx"), "non-integer", "bad.safetensors"},
      {"implausible shape", dec(header_only(R"({"a":{"dtype":"F32","shape":[1099511627777],"data_offsets":[0,4]}})") + "xxxx"), "implausibly large", "bad.safetensors"},
      {"size mismatch", dec(header_only(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})") + "xxxx"), "need 8", "bad.safetensors"},
      {"reversed offsets", dec(header_only(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})") + "xxxx"), "reversed", "bad.safetensors"},
      {"negative offsets", dec(header_only(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})") + "xxxx"), "two non-negative integers", "bad.safetensors"},
      {"data past the end", dec(header_only(R"({"a":{)" + f + "}}")), "data section has only 0", "bad.safetensors"},
      {"overlapping tensors",
       dec(header_only(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})") + std::string(8, '\0')),
       "overlap", "bad.safetensors"},
      {"metadata not a string", dec(header_only(R"({"__metadata__":{"k":1}})")), "not a string", "bad.safetensors"},
      {"metadata not an object", dec(header_only(R"({"__metadata__":[1]})")), "__metadata__ is not an object", "bad.safetensors"},
      {"entry without offsets", dec(header_only(R"({"a":{"dtype":"F32","shape":[1]}})")), "needs dtype, shape and data_offsets", "bad.safetensors"},
      {"deeply nested header", dec(header_only(std::string(100, '[') + std::string(100, ']'))), "nested deeper", "bad.safetensors"},
  };
  EXPECT_EQ(run_cases(cases), 20);
}

TEST(BadInput, ModelFiles) {
  TempDir dir;
  DRIFANet net(tiny_model());
  const auto state = runs::model_state(*net);
  const io::Metadata meta = {{runs::files::kConfigKey, net->config().to_json().dump()}};
  int n = 0;
  auto variant = [&](const std::function<void(io::NamedTensors&, io::Metadata&)>& edit) {
    auto s = state;
    for (auto& [k, t] : s) t = t.detach().clone();
    auto m = meta;
    edit(s, m);
    const std::string path = dir / ("m" + std::to_string(n++) + ".safetensors");
    io::save_safetensors(path, s, m);
    return [path] { runs::load_model(path); };
  };
  auto find = [](io::NamedTensors& s, const std::string& suffix) -> torch::Tensor& {
    for (auto& [k, t] : s)
      if (k.size() >= suffix.size() && k.compare(k.size() - suffix.size(), suffix.size(), suffix) == 0) return t;
    throw std::runtime_error("no tensor " + suffix);
  };
  auto config_with = [&](const std::string& key, const nlohmann::json& v) {
    return variant([&, key, v](io::NamedTensors&, io::Metadata& m) {
      auto j = net->config().to_json();
      j[key] = v;
      m[runs::files::kConfigKey] = j.dump();
    });
  };
  const std::string f = "m";  // every path starts with dir/m<N>
  test::write_bytes(dir / "half.safetensors", test::read_bytes([&] {
    runs::save_model(net, dir / "whole.safetensors");
    return dir / "whole.safetensors";
  }()).substr(0, 5000));
  fs::create_directories(dir / "folder.safetensors");
  ::mkfifo((dir / "fifo.safetensors").c_str(), 0600);
  const std::vector<ReaderCase> cases = {
      {"a NaN weight", variant([&](auto& s, auto&) { s[0].second.view(-1)[0] = NAN; }), "'" + state[0].first + "' holds 1 non-finite values", f},
      {"an infinite weight", variant([&](auto& s, auto&) { find(s, "stem.conv.bias").view(-1)[1] = INFINITY; }), "holds 1 non-finite values", f},
      {"an infinite running mean", variant([&](auto& s, auto&) { find(s, "running_mean").view(-1)[0] = -INFINITY; }), "non-finite", f},
      {"a negative running variance", variant([&](auto& s, auto&) { find(s, "running_var").view(-1)[0] = -0.5; }), "negative entry (-0.5", f},
      {"no config", variant([](auto&, auto& m) { m.erase(runs::files::kConfigKey); }), "not a DRIFA model file", f},
      {"config not JSON", variant([](auto&, auto& m) { m[runs::files::kConfigKey] = "{oops"; }), "metadata drifa.config: malformed JSON", f},
      {"config duplicate key", variant([](auto&, auto& m) { m[runs::files::kConfigKey] = R"({"dropout":0.1,"dropout":0.2})"; }), "duplicate key", f},
      {"image_size wraps a 32-bit int", config_with("image_size", 4294967328ll), "drifa.config.image_size: found 4294967328", f},
      {"fractional widths", config_with("widths", {8.7, 16.2}), "drifa.config.widths[0]: found 8.7", f},
      {"huge widths", config_with("widths", {200000, 200000}), "drifa.config.widths[0]: found 200000, allowed an integer from 1 to 4096", f},
      {"too many classes", config_with("classes", {2, 1000000000}), "drifa.config.classes[1]: found 1000000000", f},
      {"modalities as a string", config_with("modalities", "2"), "drifa.config.modalities: found \"2\" (a string)", f},
      {"negative dropout", config_with("dropout", -0.1), "drifa.config.dropout: found -0.1", f},
      {"unknown config key", config_with("heads", 3), "drifa.config.heads: unknown key", f},
      {"duplicate modality names", config_with("modality_names", {"a", "a"}), "found \"a\" twice", f},
      {"empty modality name", config_with("modality_names", {"a", ""}), "modality_names[1]: found \"\"", f},
      {"missing tensor", variant([](auto& s, auto&) { s.erase(s.begin() + 3); }), "missing tensors for this model", f},
      {"extra tensor", variant([](auto& s, auto&) { s.emplace_back("branches.9.x", torch::zeros({1})); }), "does not have: branches.9.x", f},
      {"wrong shape", variant([](auto& s, auto&) { s[0].second = torch::zeros({1, 2}); }), "has shape [1, 2]", f},
      {"integer weights", variant([](auto& s, auto&) { s[0].second = torch::zeros(s[0].second.sizes(), torch::kInt32); }), "not floating point", f},
      {"truncated file", [&] { runs::load_model(dir / "half.safetensors"); }, "truncated", "half.safetensors"},
      {"a folder as the model", [&] { runs::load_model(dir / "folder.safetensors"); }, "it is a folder", "folder.safetensors"},
      {"a FIFO as the model", [&] { runs::load_model(dir / "fifo.safetensors"); }, "not a regular file", "fifo.safetensors"},
      {"no such file", [&] { runs::load_model(dir / "none.safetensors"); }, "no such file", "none.safetensors"},
  };
  EXPECT_EQ(run_cases(cases), 24);
}

TEST(BadInput, TomlRunConfigs) {
  TempDir dir;
  const std::string base =
      "seed = 1\n[data]\nimage_size = 32\n[[data.modality]]\nname = \"a\"\ntrain = \"a\"\n"
      "[[data.modality]]\nname = \"b\"\ntrain = \"b\"\n";
  int n = 0;
  auto toml = [&](const std::string& text) {
    const std::string path = dir / ("c" + std::to_string(n++) + ".toml");
    test::write_bytes(path, text);
    return [path] { runs::RunConfig::from_toml(path); };
  };
  auto train = [&](const std::string& lines) { return toml(base + "[train]\n" + lines + "\n"); };
  const std::string f = ".toml";
  EXPECT_NO_THROW(runs::RunConfig::from_toml([&] {
    test::write_bytes(dir / "ok.toml", base + "[train]\nepochs = 3\n");
    return dir / "ok.toml";
  }()));
  const std::vector<ReaderCase> cases = {
      {"syntax error", toml("seed = \n"), ":1:", f},
      {"epochs 1.5 (truncated to 1 before)", train("epochs = 1.5"), "train.epochs: found 1.5 (a float), allowed an integer from 1 to 100000", f},
      {"epochs 0", train("epochs = 0"), "train.epochs: found 0", f},
      {"image_size wraps to 32", toml("seed = 1\n[data]\nimage_size = 4294967328\n"), "data.image_size: found 4294967328, allowed an integer from 16 to 2048", f},
      {"widths as floats", toml(base + "[model]\nwidths = [8.7, 16.2]\n"), "model.widths[0]: found 8.7", f},
      {"widths too wide", toml(base + "[model]\nwidths = [200000, 200000]\n"), "model.widths[0]: found 200000", f},
      {"negative task weight", train("task_weights = [-1.0, 1.0]"), "train.task_weights[0]: found -1", f},
      {"negative plateau patience", train("plateau_patience = -1"), "train.plateau_patience: found -1", f},
      {"zero early-stop patience", train("early_stop_patience = 0"), "train.early_stop_patience: found 0, allowed an integer from 1", f},
      {"negative min_lr", train("min_lr = -1e-5"), "train.min_lr: found -1e-05", f},
      {"NaN learning rate", train("lr = nan"), "train.lr: found nan", f},
      {"infinite learning rate", train("lr = inf"), "train.lr: found inf", f},
      {"negative steps per epoch", train("steps_per_epoch = -1"), "train.steps_per_epoch: found -1", f},
      {"micro-batches beyond the batch", train("batch_size = 4\nmicro_batches = 8"), "train.micro_batches: found 8, allowed at most batch_size (4)", f},
      {"batch of one", train("batch_size = 1"), "train.batch_size: found 1", f},
      {"bf16 as a string", train("bf16 = \"yes\""), "train.bf16: found \"yes\" (a string), allowed true or false", f},
      {"class weights as a word", train("class_weights = \"inverse\""), "train.class_weights: found \"inverse\", allowed none | balanced", f},
      {"class weights not lists", train("class_weights = [1.0, 2.0]"), "train.class_weights[0]: found 1, allowed a list of one weight per class", f},
      {"negative class weight", train("class_weights = [[1.0, -2.0], [1.0, 1.0]]"), "train.class_weights[0][1]: found -2", f},
      {"class weights as a number", train("class_weights = 3"), "train.class_weights: found 3, allowed \"none\", \"balanced\"", f},
      {"unknown sampling", train("sampling = \"oversample\""), "train.sampling: found \"oversample\", allowed natural | balanced", f},
      {"modality dropout 1", train("modality_dropout = 1.0"), "train.modality_dropout: found 1, allowed", f},
      {"modality dropout as text", train("modality_dropout = \"half\""), "train.modality_dropout: found \"half\"", f},
      {"unknown train key", train("epoch = 3"), "train.epoch: unknown key; allowed: epochs,", f},
      {"unknown top-level key", toml(base + "sede = 2\n"), "unknown key", f},
      {"negative seed", toml("seed = -1\n" + base.substr(9)), "seed: found -1", f},
      {"duplicate modality names", toml("[data]\n[[data.modality]]\nname = \"a\"\ntrain = \"a\"\n[[data.modality]]\nname = \"a\"\ntrain = \"b\"\n"),
       "data.modality[1].name: found 'a' twice", f},
      {"empty modality name", toml("[data]\n[[data.modality]]\nname = \"\"\ntrain = \"a\"\n[[data.modality]]\nname = \"b\"\ntrain = \"b\"\n"),
       "data.modality[0].name: found an empty string", f},
      {"control character in a name", toml("[data]\n[[data.modality]]\nname = \"a\\u0000b\"\ntrain = \"a\"\n[[data.modality]]\nname = \"b\"\ntrain = \"b\"\n"),
       "data.modality[0].name", f},
      {"one modality", toml("[data]\n[[data.modality]]\nname = \"a\"\ntrain = \"a\"\n"), "data.modality: found 1 modalities, allowed at least 2", f},
      {"no data table", toml("seed = 1\n"), "data: missing", f},
      {"train and manifest both", toml("[data]\n[[data.modality]]\nname = \"a\"\ntrain = \"a\"\nmanifest = \"m.csv\"\n[[data.modality]]\nname = \"b\"\ntrain = \"b\"\n"),
       "give exactly one of train", f},
      {"paired and unpaired both", toml(base + "[data.paired]\nmanifest = \"m.csv\"\nimages = [\"x\", \"y\"]\nlabels = [\"l\"]\n"), "not both", f},
      {"paired without labels", toml("[data.paired]\nmanifest = \"m.csv\"\nimages = [\"x\", \"y\"]\n"), "data.paired.labels: missing", f},
      {"channels 2", toml("[data]\nchannels = 2\n"), "data.channels: found 2, allowed 1, 3, or 5", f},
      {"val_fraction 1", toml("[data]\nval_fraction = 1.0\n"), "data.val_fraction: found 1, allowed a finite number in (0, 1)", f},
      {"window width without center", toml("[data]\nwindow_width = 400\n"), "data.window_center: missing", f},
      {"zero window width", toml("[data]\nwindow_center = 40\nwindow_width = 0\n"), "data.window_width: found 0", f},
      {"max_image_pixels 0", toml("[data]\nmax_image_pixels = 0\n"), "data.max_image_pixels: found 0", f},
      {"brightness reversed", toml(base + "[augment]\nbrightness = [1.2, 0.8]\n"), "augment.brightness: found [1.2, 0.8]", f},
      {"negative rotation", toml(base + "[augment]\nrotation = -5\n"), "augment.rotation: found -5", f},
      {"a date value", toml("seed = 1979-05-27\n"), "a date or time value", f},
      {"dropout 1", toml(base + "[model]\ndropout = 1.0\n"), "model.dropout: found 1, allowed a finite number in [0, 1)", f},
      {"modalities set in [model]", toml(base + "[model]\nmodalities = 3\n"), "model.modalities: unknown key", f},
      {"a folder as the config", [&] { runs::RunConfig::from_toml(dir.path().string()); }, "it is a folder", dir.path().string()},
  };
  EXPECT_EQ(run_cases(cases), 45);
}

TEST(BadInput, CsvManifests) {
  TempDir dir;
  test::write_bytes(dir / "img.png", png_bytes(16));
  int n = 0;
  auto manifest = [&](const std::string& text, const std::string& label_col = "label") {
    const std::string path = dir / ("m" + std::to_string(n++) + ".csv");
    test::write_bytes(path, text);
    data::ManifestSpec s;
    s.csv = path;
    s.label_column = label_col;
    return [s] { data::load_manifest(s, "mod"); };
  };
  const std::string f = ".csv";
  const std::vector<ReaderCase> cases = {
      {"unterminated quote", manifest("path,label\n\"img.png,a\n"), "unterminated quoted field", f},
      {"ragged row", manifest("path,label\nimg.png\n"), "row 2 has 1 fields, the header has 2", f},
      {"empty file", manifest(""), "empty CSV file", f},
      {"only a BOM", manifest("\xEF\xBB\xBF"), "empty CSV file", f},
      {"header only", manifest("path,label\n"), "header but no rows", f},
      {"missing label column", manifest("path,label\nimg.png,a\n", "dx"), "no column 'dx'", f},
      {"NUL byte in a path", manifest([] {
         const char text[] = "path,label\nimg.png\0../x,a\nimg.png,b\n";
         return std::string(text, sizeof(text) - 1);
       }()),
       "NUL byte", f},
      {"missing image", manifest("path,label\nnone.png,a\nimg.png,b\n"), "not found", f},
      {"empty path", manifest("path,label\n,a\nimg.png,b\n"), "empty path", f},
      {"one class", manifest("path,label\nimg.png,a\n"), "needs at least 2 classes", f},
  };
  EXPECT_EQ(run_cases(cases), 10);
}

TEST(BadInput, ImagesAndDicom) {
  TempDir dir;
  auto file = [&](const std::string& name, const std::string& bytes) {
    test::write_bytes(dir / name, bytes);
    return [p = dir / name] { data::decode_image(p); };
  };
  // a valid DICOM from the same builder decodes (the cases below break one thing each)
  test::write_bytes(dir / "ok.dcm", dicom(4, 4, 32, 32));
  const auto ok = data::decode_image(dir / "ok.dcm");
  EXPECT_EQ(ok.rows, 4);
  EXPECT_EQ(ok.cols, 4);
  EXPECT_GT(cv::norm(ok, cv::NORM_INF), 0.5);
  test::write_bytes(dir / "ok.png", png_bytes(16));
  EXPECT_EQ(data::decode_image(dir / "ok.png").rows, 16);
  const std::string png = png_bytes(32), jpg = jpeg_bytes(32);
  std::string huge_png = png.substr(0, 33);
  for (int i = 0; i < 4; ++i) huge_png[16 + i] = huge_png[20 + i] = "\x00\x00\x75\x30"[i];  // 30000 x 30000
  std::string huge_jpg = jpg;
  for (size_t i = 2; i + 9 < huge_jpg.size(); ++i)
    if (static_cast<unsigned char>(huge_jpg[i]) == 0xFF && static_cast<unsigned char>(huge_jpg[i + 1]) == 0xC0) {
      huge_jpg[i + 5] = huge_jpg[i + 7] = '\xFD';  // 65000-ish x 65000-ish
      break;
    }
  cv::Mat nan_img(8, 8, CV_32F, cv::Scalar(0.5));
  nan_img.at<float>(3, 3) = NAN;
  cv::imwrite(dir / "nan.tiff", nan_img);
  cv::Mat inf_img(8, 8, CV_32F, cv::Scalar(0.5));
  inf_img.at<float>(1, 2) = INFINITY;
  cv::imwrite(dir / "inf.tiff", inf_img);
  fs::create_directories(dir / "folder.png");
  ::mkfifo((dir / "fifo.png").c_str(), 0600);
  const std::vector<ReaderCase> cases = {
      {"empty file", file("empty.png", ""), "empty file", "empty.png"},
      {"text named .png", file("text.png", "hello, world"), "not a PNG, JPEG, BMP, TIFF or DICOM image", "text.png"},
      {"PNG claiming 30000x30000", file("huge.png", huge_png), "claims 30000x30000 pixels, more than the limit", "huge.png"},
      {"PNG without IHDR", file("noihdr.png", png.substr(0, 10)), "corrupt PNG header", "noihdr.png"},
      {"truncated PNG", file("trunc.png", png.substr(0, png.size() / 2)), "truncated PNG", "trunc.png"},
      {"PNG cut before its IEND chunk", file("noiend.png", png.substr(0, png.size() - 12)), "truncated PNG: the file ends", "noiend.png"},
      {"PNG with a damaged IDAT byte", file("crc.png", png_with_damaged_idat(png)), "chunk IDAT at byte 33 fails its CRC check", "crc.png"},
      // The end-of-image marker is there; the entropy-coded data stops halfway (libjpeg warns and fills grey).
      {"JPEG cut in its data, end marker kept", file("cut.jpg", jpg.substr(0, jpg.size() / 2) + "\xFF\xD9"),
       "corrupt or truncated JPEG (libjpeg: ", "cut.jpg"},
      {"TIFF whose strip runs past the end", file("strip.tiff", tiff_strip(32, 100)),
       "truncated TIFF: strip 0 (bytes 62 to 1086) runs past the end of the file (162 bytes)", "strip.tiff"},
      {"TIFF without strip offsets", file("nostrip.tiff", tiff_header(4, 4)), "no strip or tile offsets", "nostrip.tiff"},
      {"truncated JPEG", file("trunc.jpg", jpg.substr(0, jpg.size() - 200)), "truncated JPEG", "trunc.jpg"},
      {"truncated JPEG named .png", file("jpeg.png", jpg.substr(0, jpg.size() - 200)), "truncated JPEG", "jpeg.png"},
      {"JPEG claiming a huge frame", file("huge.jpg", huge_jpg), "more than the limit", "huge.jpg"},
      {"JPEG without a frame", file("noframe.jpg", std::string("\xFF\xD8\xFF\xDA\x00\x02\xFF\xD9", 8)), "corrupt JPEG header", "noframe.jpg"},
      {"BMP of width 0", file("zero.bmp", "BM" + std::string(12, '\0') + u32(40) + u32(0) + u32(8) + std::string(30, '\0')), "corrupt BMP header", "zero.bmp"},
      {"TIFF claiming 100000x100000", file("huge.tiff", tiff_header(100000, 100000)), "claims 100000x100000 pixels", "huge.tiff"},
      {"BigTIFF", file("big.tiff", std::string("II+\0", 4) + std::string(12, '\0')), "BigTIFF is not supported", "big.tiff"},
      {"TIFF directory past the end", file("ifd.tiff", std::string("II*\0", 4) + u32(4000)), "outside the file", "ifd.tiff"},
      {"float TIFF with NaN", [&] { data::decode_image(dir / "nan.tiff"); }, "non-finite pixel values", "nan.tiff"},
      {"float TIFF with infinity", [&] { data::decode_image(dir / "inf.tiff"); }, "non-finite pixel values", "inf.tiff"},
      {"a folder", [&] { data::decode_image(dir / "folder.png"); }, "is a folder", "folder.png"},
      {"a FIFO", [&] { data::decode_image(dir / "fifo.png"); }, "not a regular file", "fifo.png"},
      {"no such file", [&] { data::decode_image(dir / "none.png"); }, "file not found", "none.png"},
      {"DICOM claiming 65535x65535 with 16 bytes", file("huge.dcm", dicom(65535, 65535, 16, 16)), "claims 65535x65535 pixels", "huge.dcm"},
      {"DICOM pixel data cut short", file("cut.dcm", dicom(64, 64, 8192, 100)), "truncated DICOM pixel data (100 of 8192 bytes", "cut.dcm"},
      {"DICOM pixel data shorter than its dimensions", file("short.dcm", dicom(64, 64, 16, 16)), "pixel data holds 16 bytes", "short.dcm"},
      {"DICOM declaring 4 GB of pixels", file("len.dcm", dicom(4, 4, 0xFFFFFFF0u, 32)), "truncated DICOM pixel data", "len.dcm"},
      {".dcm that is not DICOM", file("not.dcm", "just text, no preamble"), "malformed DICOM at byte 0", "not.dcm"},
      // Debian's GDCM asserts (aborting the process) on these; the structure walk refuses them first.
      {"DICOM cut inside the pixel data header", file("hdr.dcm", dicom(4, 4, 32, 32).substr(0, dicom(4, 4, 32, 32).size() - 32 - 6)),
       "a value length is cut off (truncated file?)", "hdr.dcm"},
      {"DICOM cut inside an element tag", file("tag.dcm", dicom(4, 4, 32, 32).substr(0, 134)), "an element tag is cut off", "tag.dcm"},
      {"DICOM with an unknown value representation", file("vr.dcm", [] {
         auto d = dicom(4, 4, 32, 32);
         d[d.size() - 32 - 12 + 4] = 'Q';  // "OW" -> "QW"
         return d;
       }()),
       "unknown value representation", "vr.dcm"},
      {"DICOM with an item tag outside a sequence", file("item.dcm", [] {
         auto d = dicom(4, 4, 32, 32);
         const size_t at = d.size() - 32 - 12;  // the pixel data tag
         d.replace(at, 4, std::string("\xfe\xff\x00\xe0", 4));
         return d;
       }()),
       "item or delimiter tag outside a sequence", "item.dcm"},
      {"fuzzer finding: TIFF bytes with DICM at 128 (GDCM asserted)",
       [] { data::decode_image(std::string(DRIFA_SOURCE_DIR) + "/fuzz/regressions/fuzz_image/gdcm_assert_truncated_element_header"); },
       "malformed DICOM", "gdcm_assert_truncated_element_header"},
      {"fuzzer finding: a Rescale Intercept of the wrong VR (GDCM asserted; now in a child process)",
       [] { data::decode_image(std::string(DRIFA_SOURCE_DIR) + "/fuzz/regressions/fuzz_dicom/gdcm_assert_rescale_intercept_vr.dcm"); },
       "the DICOM decoder (GDCM) stopped on it (signal 6", "gdcm_assert_rescale_intercept_vr"},
      {"DICOM without pixel data", file("nopix.dcm", dicom(4, 4, 32, 32).substr(0, 300)), "DICOM", "nopix.dcm"},
  };
  EXPECT_EQ(run_cases(cases), 35);
}

// ---- run folders: one small trained run, corrupted one file at a time -----------------------

class BadRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    const auto cfg = test::make_run_config(*dir_, "epochs = 1\n", 6, 32);
    auto r = test::run(test::cli() + " train -q --threads 2 -c " + cfg + " -o " + (*dir_ / "run"));
    ASSERT_EQ(r.status, 0) << r.output;
    for (const std::string c : {" uq -q -T 2 ", " gradcam -q -n 2 ", " tsne -q --iterations 250 "}) {
      r = test::run(test::cli() + c + (*dir_ / "run"));
      ASSERT_EQ(r.status, 0) << c << r.output;
    }
  }
  static void TearDownTestSuite() { delete dir_; }

  // A fresh copy of the trained run whose file `name` is replaced by `content`.
  std::string corrupt(const std::string& name, const std::string& content) {
    const std::string copy = *dir_ / ("case" + std::to_string(copies_++));
    fs::copy(*dir_ / "run", copy, fs::copy_options::recursive);
    test::write_bytes(copy + "/" + name, content);
    return copy;
  }
  // The same, editing the file's JSON.
  std::string edit_json(const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
    auto j = test::read_json(*dir_ / ("run/" + name));
    edit(j);
    return corrupt(name, j.dump());
  }
  static std::string run_dir() { return *dir_ / "run"; }

  static TempDir* dir_;
  static int copies_;
};
TempDir* BadRun::dir_ = nullptr;
int BadRun::copies_ = 0;

TEST_F(BadRun, RunFileReaders) {
  namespace rf = runs::files;
  auto open = [](const std::string& d) { return [d] { runs::RunFolder::open(d); }; };
  auto report_of = [](const std::string& d, std::function<void(const std::string&)> read) { return [d, read] { read(d); }; };
  auto metrics = [](const std::string& d) { rf::read_metrics(d); };
  auto uq = [](const std::string& d) { rf::read_uq(d); };
  auto tsne = [](const std::string& d) { rf::read_tsne(d); };
  auto gradcam = [](const std::string& d) { rf::read_gradcam(d); };
  auto logcsv = [](const std::string& d) { rf::read_log_csv(d); };
  auto samples = [](const std::string& d) { rf::read_uq_samples(d + "/uq/samples.csv"); };
  const std::vector<ReaderCase> cases = {
      {"config.json not JSON", open(corrupt("config.json", "{\"seed\": ")), "config.json: malformed JSON", "config.json"},
      {"config.json wrong type", open(edit_json("config.json", [](auto& j) { j["train"]["epochs"] = "ten"; })),
       "train.epochs: found \"ten\" (a string)", "config.json"},
      {"config.json duplicate key", open(corrupt("config.json", R"({"seed": 1, "seed": 2})")), "duplicate key", "config.json"},
      {"split.json: fewer class lists than modalities", open(edit_json("split.json", [](auto& j) { j["classes"].erase(1); })),
       "classes: found 1 class lists, allowed one per task (2)", "split.json"},
      {"split.json: a label beyond its classes", open(edit_json("split.json", [](auto& j) { j["test"][0][0][1] = 99; })),
       "test[0][0][1]: found 99, allowed a label from 0 to 2", "split.json"},
      {"split.json: a record list missing", open(edit_json("split.json", [](auto& j) { j["val"].erase(1); })),
       "val: found 1 record lists, allowed one per modality (2)", "split.json"},
      {"split.json: an empty record list", open(edit_json("split.json", [](auto& j) { j["train"][0] = nlohmann::json::array(); })),
       "train[0]: found [], allowed a non-empty list", "split.json"},
      {"split.json: a record of one field", open(edit_json("split.json", [](auto& j) { j["train"][0][0] = {"x.png"}; })),
       "train[0][0]: found [\"x.png\"], allowed [path, label]", "split.json"},
      {"split.json: paired rows of different lengths",
       open(edit_json("split.json", [](auto& j) {
         j["paired"] = true;
         j["train"] = {{{"paths", {"a.png", "b.png"}}, {"labels", {0, 0}}}, {{"paths", {"a.png"}}, {"labels", {0, 0}}}};
       })),
       "train[1].paths: found [\"a.png\"], allowed one image path per modality (2)", "split.json"},
      {"split.json: class names with NUL", open(edit_json("split.json", [](auto& j) { j["classes"][0][0] = std::string("a\0b", 3); })),
       "classes[0][0]", "split.json"},
      {"split.json missing", open(corrupt("split.json", "")), "split.json: malformed JSON", "split.json"},
      {"metrics.json: empty class list", report_of(edit_json("metrics.json", [](auto& j) { j["tasks"]["derm"]["classes"] = nlohmann::json::array(); }), metrics),
       "tasks.derm.classes: found a list of 0 entries", "metrics.json"},
      {"metrics.json: confusion matrix of the wrong size",
       report_of(edit_json("metrics.json", [](auto& j) { j["tasks"]["derm"]["confusion_matrix"].erase(0); }), metrics),
       "tasks.derm.confusion_matrix: found", "metrics.json"},
      {"metrics.json: negative count",
       report_of(edit_json("metrics.json", [](auto& j) { j["tasks"]["derm"]["confusion_matrix"][0][0] = -1; }), metrics),
       "tasks.derm.confusion_matrix[0][0]: found -1", "metrics.json"},
      {"metrics.json: accuracy 1.5", report_of(edit_json("metrics.json", [](auto& j) { j["tasks"]["mri"]["accuracy"] = 1.5; }), metrics),
       "tasks.mri.accuracy: found 1.5", "metrics.json"},
      {"metrics.json: no tasks", report_of(edit_json("metrics.json", [](auto& j) { j.erase("tasks"); }), metrics), "tasks: missing", "metrics.json"},
      {"uq.json: reliability accuracy not a number",
       report_of(corrupt("uq/uq.json", [&] {
         auto j = test::read_json(run_dir() + "/uq/uq.json");
         j["tasks"]["derm"]["mc"]["reliability"]["accuracy"][0] = "x";
         return j.dump();
       }()), uq),
       "reliability.accuracy[0]: found \"x\"", "uq.json"},
      {"uq.json: bins disagree with counts",
       report_of(corrupt("uq/uq.json", [&] {
         auto j = test::read_json(run_dir() + "/uq/uq.json");
         j["tasks"]["derm"]["mc"]["reliability"]["bins"] = 16;
         return j.dump();
       }()), uq),
       "reliability.count: found a list of 15 entries, allowed 16 to 16 entries", "uq.json"},
      {"uq.json: passes negative",
       report_of(corrupt("uq/uq.json", [&] {
         auto j = test::read_json(run_dir() + "/uq/uq.json");
         j["passes"] = -5;
         return j.dump();
       }()), uq),
       "passes: found -5", "uq.json"},
      {"samples.csv: an entropy that is not a number",
       report_of(corrupt("uq/samples.csv", "sample,task,correct,predictive_entropy,mutual_information\n0,derm,1,abc,0.1\n"), samples),
       "column predictive_entropy: found \"abc\", allowed a finite number", "samples.csv"},
      {"samples.csv: NaN entropy",
       report_of(corrupt("uq/samples.csv", "sample,task,correct,predictive_entropy,mutual_information\n0,derm,1,nan,0.1\n"), samples),
       "found \"nan\", allowed a finite number", "samples.csv"},
      {"samples.csv: negative entropy",
       report_of(corrupt("uq/samples.csv", "sample,task,correct,predictive_entropy,mutual_information\n0,derm,1,-2,0.1\n"), samples),
       "entropy below zero", "samples.csv"},
      {"samples.csv: correct is 2",
       report_of(corrupt("uq/samples.csv", "sample,task,correct,predictive_entropy,mutual_information\n0,derm,2,0.5,0.1\n"), samples),
       "column correct: found \"2\", allowed 0 or 1", "samples.csv"},
      {"log.csv: a number that is not one", report_of(corrupt("log.csv", "epoch,train_loss,val_loss\n1,0.5,x1\n"), logcsv),
       "column val_loss: found \"x1\", allowed a finite number", "log.csv"},
      {"log.csv: missing column", report_of(corrupt("log.csv", "epoch,train_loss\n1,0.5\n"), logcsv), "no column 'val_loss'", "log.csv"},
      {"log.csv: accuracy 7", report_of(corrupt("log.csv", "epoch,train_loss,val_loss,val_acc_derm\n1,0.5,0.4,7\n"), logcsv),
       "allowed an accuracy in [0, 1]", "log.csv"},
      {"tsne.json: png outside the folder",
       report_of(corrupt("tsne/tsne.json", [&] {
         auto j = test::read_json(run_dir() + "/tsne/tsne.json");
         j["embeddings"]["derm"]["png"] = "../../etc/passwd";
         return j.dump();
       }()), tsne),
       "embeddings.derm.png: found \"../../etc/passwd\", allowed a path inside", "tsne.json"},
      {"tsne.json: absolute png",
       report_of(corrupt("tsne/tsne.json", [&] {
         auto j = test::read_json(run_dir() + "/tsne/tsne.json");
         j["embeddings"]["derm"]["png"] = "/etc/passwd";
         return j.dump();
       }()), tsne),
       "allowed a path relative to", "tsne.json"},
      {"gradcam.json: image outside the folder",
       report_of(corrupt("gradcam/gradcam.json", [&] {
         auto j = test::read_json(run_dir() + "/gradcam/gradcam.json");
         j["images"][0]["image"] = "../config.json";
         return j.dump();
       }()), gradcam),
       "images[0].image: found \"../config.json\", allowed a path inside", "gradcam.json"},
      {"gradcam.json: probability 2",
       report_of(corrupt("gradcam/gradcam.json", [&] {
         auto j = test::read_json(run_dir() + "/gradcam/gradcam.json");
         j["images"][0]["probability"] = 2;
         return j.dump();
       }()), gradcam),
       "images[0].probability: found 2", "gradcam.json"},
      {"gradcam.json: stage -7",
       report_of(corrupt("gradcam/gradcam.json", [&] {
         auto j = test::read_json(run_dir() + "/gradcam/gradcam.json");
         j["stage"] = -7;
         return j.dump();
       }()), gradcam),
       "stage: found -7", "gradcam.json"},
      {"done.json: negative epoch", report_of(corrupt("done.json", R"({"best_epoch": -1, "best_val_loss": 0.5})"), [](const std::string& d) { rf::read_done(d); }),
       "best_epoch: found -1", "done.json"},
      {"log.json: epochs out of order", report_of(corrupt("log.json", R"([{"epoch": 2}, {"epoch": 1}])"), [](const std::string& d) { rf::read_log_json(d); }),
       "[1].epoch: found 1", "log.json"},
  };
  EXPECT_EQ(run_cases(cases), 33);
}

TEST_F(BadRun, EnsembleManifestMembersStayInside) {
  TempDir ens;
  fs::copy(run_dir(), ens / "member-0", fs::copy_options::recursive);
  test::write_bytes(ens / "ensemble.json", R"({"config": {}, "members": ["../../outside"]})");
  auto r = test::run(test::cli() + " uq -q -T 2 " + ens.path().string());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("ensemble.json: members[0]: found \"../../outside\", allowed a path inside"), std::string::npos) << r.output;
  test::write_bytes(ens / "ensemble.json", R"({"config": {}, "members": ["member-0", "member-0"]})");
  r = test::run(test::cli() + " uq -q -T 2 " + ens.path().string());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("twice"), std::string::npos) << r.output;
}

// The commands over corrupted run folders: exit 1, a message naming the file, no partial output.
TEST_F(BadRun, CommandsRefuseCorruptRunFolders) {
  struct Case {
    std::string name, command, file, content, expect;
  };
  auto j_of = [&](const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
    auto j = test::read_json(run_dir() + "/" + name);
    edit(j);
    return j.dump();
  };
  auto nan_model = [&] {
    auto f = io::load_safetensors(run_dir() + "/best.safetensors");
    f.tensors[5].second.view(-1)[0] = NAN;
    const std::string p = *dir_ / "nan.safetensors";
    io::save_safetensors(p, f.tensors, f.metadata);
    return test::read_bytes(p);
  };
  auto bad_state = [&](const char* key, const nlohmann::json& v) {
    auto f = io::load_safetensors(run_dir() + "/checkpoint.safetensors");
    auto st = nlohmann::json::parse(f.metadata["drifa.trainer_state"]);
    st[key] = v;
    f.metadata["drifa.trainer_state"] = st.dump();
    const std::string p = *dir_ / "state.safetensors";
    io::save_safetensors(p, f.tensors, f.metadata);
    return test::read_bytes(p);
  };
  const std::vector<Case> cases = {
      {"uq on a model with a NaN weight", "uq -q -T 2", "best.safetensors", nan_model(), "holds 1 non-finite values"},
      {"evaluate on a model with a NaN weight", "evaluate -q", "best.safetensors", nan_model(), "non-finite"},
      {"report with an empty class list", "report -q", "metrics.json",
       j_of("metrics.json", [](auto& j) { j["tasks"]["derm"]["classes"] = nlohmann::json::array(); }), "metrics.json: tasks.derm.classes"},
      {"report with a png outside the run", "report -q", "tsne/tsne.json",
       j_of("tsne/tsne.json", [](auto& j) { j["embeddings"]["derm"]["png"] = "../../../../../../etc/passwd"; }), "allowed a path inside"},
      {"report with a bad log", "report -q", "log.csv", "epoch,train_loss,val_loss\n1,zero,0.5\n", "log.csv: row 2, column train_loss"},
      {"evaluate with paired rows of different lengths", "evaluate -q", "split.json",
       j_of("split.json", [](auto& j) {
         j["paired"] = true;
         j["train"] = {{{"paths", {"a.png", "b.png"}}, {"labels", {0, 0}}}, {{"paths", {"a.png"}}, {"labels", {0, 0}}}};
       }),
       "split.json: "},
      {"evaluate with fewer class lists", "evaluate -q", "split.json", j_of("split.json", [](auto& j) { j["classes"].erase(1); }),
       "split.json: classes: found 1 class lists"},
      {"resume with epoch -3", "train -q --resume -c " + (*dir_ / "data/run.toml") + " -o", "checkpoint.safetensors",
       bad_state("epoch", -3), "drifa.trainer_state.epoch: found -3"},
      {"resume with lr -0.5", "train -q --resume -c " + (*dir_ / "data/run.toml") + " -o", "checkpoint.safetensors",
       bad_state("lr", -0.5), "drifa.trainer_state.lr: found -0.5"},
      {"gradcam on a truncated model", "gradcam -q", "best.safetensors", test::read_bytes(run_dir() + "/best.safetensors").substr(0, 3000),
       "best.safetensors: not a valid safetensors file"},
  };
  for (const auto& c : cases) {
    const auto d = corrupt(c.file, c.content);
    const auto before = fs::exists(d + "/report.html");
    auto r = test::run(test::cli() + " " + c.command + " " + d);
    EXPECT_EQ(r.status, 1) << c.name << ": " << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.name << ": " << r.output;
    EXPECT_NE(r.output.find("drifa: error: "), std::string::npos) << c.name << ": " << r.output;
    expect_clean_message(c.name, r.output);
    if (c.command.rfind("report", 0) == 0) EXPECT_EQ(fs::exists(d + "/report.html"), before) << c.name << ": a report was written";
  }
}

// Flags: every count, rate and size a flag takes is bounded; nothing hangs or allocates what a number says.
TEST(BadInput, CommandLineFlags) {
  TempDir dir;
  auto r = test::run(test::cli() + " init -q --preset tiny --modalities 2 --classes 2,3 -o " + (dir / "m.safetensors"));
  ASSERT_EQ(r.status, 0) << r.output;
  test::write_bytes(dir / "a.png", png_bytes(32));
  test::write_bytes(dir / "text.png", "not an image");
  const std::string model = dir / "m.safetensors";
  const std::string imgs = " -i " + (dir / "a.png") + " " + (dir / "a.png");
  struct Case {
    std::string args, expect;
  };
  const std::vector<Case> cases = {
      {"info --threads 1000000", "--threads: found 1000000"},
      {"info --threads -1", "--threads: found -1"},
      {"info --device tpu", "device must be auto, cpu, cuda or cuda:N, got 'tpu'"},
      {"init --widths 200000,200000 -o " + (dir / "x.safetensors"), "command line: widths[0]: found 200000, allowed an integer from 1 to 4096"},
      {"init --widths 8.7,16.2 -o " + (dir / "x.safetensors"), "--widths: found '8.7'"},
      {"init --image-size 100000 -o " + (dir / "x.safetensors"), "--image-size: found 100000"},
      {"init --image-size 4294967328 -o " + (dir / "x.safetensors"), "--image-size"},
      {"init --dropout nan -o " + (dir / "x.safetensors"), "--dropout: found nan"},
      {"init --classes 5,1 -o " + (dir / "x.safetensors"), "classes[1]: found 1"},
      {"init --widths 4096,4096,4096,4096 --image-size 2048 -o " + (dir / "x.safetensors"), "this machine has"},
      {"synth --size 1000000 -o " + (dir / "s"), "--size: found 1000000"},
      {"synth --train-per-class -3 -o " + (dir / "s"), "--train-per-class: found -3"},
      {"predict -T 2000000000 " + model + imgs, "--passes: found 2000000000"},
      {"predict -T -1 " + model + imgs, "--passes: found -1"},
      {"predict " + model + " -i " + (dir / "a.png"), "the model takes 2 images"},
      {"predict " + model + " -i " + (dir / "text.png") + " " + (dir / "a.png"), "text.png: not a PNG"},
      {"predict " + model + " -i " + dir.path().string() + " " + (dir / "a.png"), "is a folder"},
      {"predict " + model, "give --images"},
      {"uq --passes -5 " + dir.path().string(), "--passes: found -5"},
      {"uq --batch-size 0 " + dir.path().string(), "--batch-size: found 0"},
      {"uq " + dir.path().string(), "neither an ensemble folder"},
      {"uq " + (dir / "nothere"), "no such folder"},
      {"gradcam -n -1 " + dir.path().string(), "--count: found -1"},
      {"tsne --perplexity 0 " + dir.path().string(), "--perplexity: found 0"},
      {"tsne --iterations 5 " + dir.path().string(), "--iterations: found 5"},
      {"report " + model, "no such folder"},
      {"ensemble -k 0 -c x.toml -o " + (dir / "e"), "--members: found 0"},
      {"train --nproc -2 -c x.toml -o " + (dir / "t"), "--nproc: found -2"},
      {"train --dist-timeout 0 -c x.toml -o " + (dir / "t"), "--dist-timeout: found 0"},
      {"train -c " + dir.path().string() + " -o " + (dir / "t"), "it is a folder"},
      {"train --epochs 1.5 -c x.toml -o " + (dir / "t"), "--epochs"},
      {"evaluate " + (dir / "nothere"), "no such folder"},
      {"info --attention nonsense", "command line: attention: found \"nonsense\""},
      {"info --in-channels 9", "--in-channels: found 9"},
  };
  for (const auto& c : cases) {
    auto res = test::run(test::cli() + " " + c.args);
    EXPECT_NE(res.status, 0) << c.args << ": " << res.output;
    EXPECT_NE(res.status, -1) << c.args << ": killed by a signal: " << res.output;
    EXPECT_NE(res.output.find(c.expect), std::string::npos) << c.args << " -> " << res.output;
    expect_clean_message(c.args, res.output);
  }
  EXPECT_EQ(cases.size(), 34u);
}

// Train flags over a config that is otherwise fine: the same validator as the file's [train].
TEST_F(BadRun, TrainFlagsAreValidatedLikeTheConfigFile) {
  const std::string cfg = *dir_ / "data/run.toml";
  struct Case {
    std::string flags, expect;
  };
  const Case cases[] = {
      {"--steps-per-epoch -1", "command line: train.steps_per_epoch: found -1"},
      {"--epochs 0", "command line: train.epochs: found 0"},
      {"--batch-size 1", "command line: train.batch_size: found 1"},
      {"--lr -0.5", "command line: train.lr: found -0.5"},
      {"--micro-batches 64", "command line: train.micro_batches: found 64, allowed at most batch_size (8)"},
      {"--workers -1", "command line: --workers: found -1"},
      {"--seed -1", "command line: --seed: found -1"},
  };
  for (const auto& c : cases) {
    auto r = test::run(test::cli() + " train -q " + c.flags + " -c " + cfg + " -o " + (*dir_ / "flagrun"));
    EXPECT_EQ(r.status, 1) << c.flags << ": " << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.flags << ": " << r.output;
    EXPECT_FALSE(fs::exists(*dir_ / "flagrun/config.json")) << c.flags;
  }
}
