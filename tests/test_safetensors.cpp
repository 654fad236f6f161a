// safetensors and model files: bit-exact round trips and clear errors for every malformation.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "drifa/drifa.h"
#include "test_helpers.h"

using namespace drifa;
using drifa::test::TempDir;

namespace {

ModelConfig tiny() {
  ModelConfig c;
  c.widths = widths_preset("tiny");
  c.image_size = 32;
  return c;
}

// Makes every tensor of the state non-trivial (scales, BN running stats) so a round trip
// that dropped or confused any of them would show.
void scramble(DRIFANet& net) {
  torch::NoGradGuard ng;
  for (auto& [n, t] : runs::model_state(*net)) t.copy_(torch::rand_like(t) + 0.5);
}

std::string expect_error(const std::function<void()>& f) { return test::error_message<Error>(f); }

std::string header_only(const std::string& json) {
  std::string out(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + json;
}

}  // namespace

TEST(Safetensors, ModelRoundTripIsBitExact) {
  TempDir dir;
  torch::manual_seed(2);
  auto cfg = tiny();
  cfg.modalities = 3;
  cfg.classes = {4, 2, 3};
  cfg.attention = Attention::DRIFA;
  cfg.modality_names = {"mri", "ct", "xray"};
  cfg.class_names = {{"a", "b", "c", "d"}, {}, {"x", "y", "z"}};
  DRIFANet net(cfg);
  scramble(net);
  runs::save_model(net, dir / "m.safetensors", {{"note", "hello"}});

  auto loaded = runs::load_model(dir / "m.safetensors");
  EXPECT_EQ(loaded.net->config().to_json(), cfg.to_json());
  EXPECT_EQ(loaded.metadata.at("note"), "hello");
  EXPECT_EQ(loaded.metadata.at("format"), "pt");
  auto a = runs::model_state(*net), b = runs::model_state(*loaded.net);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  }
  // Same outputs, bit for bit.
  net->set_mode(Mode::Eval);
  loaded.net->set_mode(Mode::Eval);
  std::vector<torch::Tensor> xs;
  for (int m = 0; m < 3; ++m) xs.push_back(torch::rand({2, 3, 32, 32}));
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(net->forward(xs).logits[2], loaded.net->forward(xs).logits[2]));
  // Saving again gives the same bytes.
  runs::save_model(loaded.net, dir / "m2.safetensors", {{"note", "hello"}});
  EXPECT_EQ(test::read_bytes(dir / "m.safetensors"), test::read_bytes(dir / "m2.safetensors"));
}

TEST(Safetensors, EveryDtypeRoundTripsAndHeaderIsAligned) {
  io::NamedTensors ts = {
      {"f32", torch::randn({2, 3})},
      {"f64", torch::randn({4}, torch::kFloat64)},
      {"f16", torch::randn({3, 1}).to(torch::kFloat16)},
      {"bf16", torch::randn({5}).to(torch::kBFloat16)},
      {"i64", torch::arange(6).view({2, 3})},
      {"i32", torch::arange(3, torch::kInt32)},
      {"u8", torch::arange(200, 210).to(torch::kUInt8)},
      {"b", torch::tensor({true, false, true})},
      {"scalar", torch::tensor(3.5f)},
      {"empty", torch::zeros({0, 4})},
      {"noncontig", torch::randn({4, 4}).t()},
  };
  auto bytes = io::encode_safetensors(ts, {{"k", "v"}});
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[i])) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
  auto f = io::decode_safetensors(bytes, "mem");
  EXPECT_EQ(f.metadata.at("k"), "v");
  ASSERT_EQ(f.tensors.size(), ts.size());
  for (const auto& [name, t] : ts) {
    const auto* got = f.find(name);
    ASSERT_NE(got, nullptr) << name;
    EXPECT_EQ(got->scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(*got, t.contiguous())) << name;
  }
}

TEST(Safetensors, TruncatedFilesGiveClearErrors) {
  TempDir dir;
  DRIFANet net(tiny());
  runs::save_model(net, dir / "m.safetensors");
  const auto bytes = test::read_bytes(dir / "m.safetensors");
  for (size_t cut : {size_t(0), size_t(5), size_t(8), size_t(100), bytes.size() / 2, bytes.size() - 1}) {
    test::write_bytes(dir / "cut.safetensors", bytes.substr(0, cut));
    auto msg = expect_error([&] { runs::load_model(dir / "cut.safetensors"); });
    EXPECT_NE(msg.find("cut.safetensors"), std::string::npos) << msg;
    EXPECT_TRUE(msg.find("truncated") != std::string::npos || msg.find("larger than the file") != std::string::npos)
        << "cut at " << cut << ": " << msg;
  }
}

TEST(Safetensors, MalformedHeadersGiveClearErrors) {
  struct Case {
    std::string bytes, expect;
  };
  std::string huge(8, '\xff');
  std::vector<Case> cases = {
      {huge + "{}", "larger than the file"},
      {header_only("{not json"), "safetensors header: malformed JSON"},
      {header_only("[1,2]"), "not a JSON object"},
      {header_only(R"({"a":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}})") + "xxxx", "unsupported dtype"},
      {header_only(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})") + "xxxx", "negative"},
      {header_only(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})") + "xxxx", "need 8"},
      {header_only(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})") + "xxxx", "reversed"},
      {header_only(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})"), "data section has only 0"},
      {header_only(R"({"a":{"dtype":"F32","shape":[1]}})"), "needs dtype, shape and data_offsets"},
      {header_only(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})") +
           std::string(8, '\0'),
       "overlap"},
      {header_only(R"({"__metadata__":{"k":1}})"), "not a string"},
  };
  for (const auto& c : cases) {
    auto msg = expect_error([&] { io::decode_safetensors(c.bytes, "bad.safetensors"); });
    EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << msg;
  }
  EXPECT_NE(expect_error([] { io::load_safetensors("/nonexistent/x.safetensors"); }).find("cannot open"),
            std::string::npos);
}

TEST(ModelFile, WrongNamesShapesAndConfigsGiveClearErrors) {
  TempDir dir;
  DRIFANet net(tiny());
  auto state = runs::model_state(*net);
  const auto meta = io::Metadata{{runs::files::kConfigKey, net->config().to_json().dump()}};
  auto save_and_load = [&](const io::NamedTensors& ts, const io::Metadata& m) {
    io::save_safetensors(dir / "x.safetensors", ts, m);
    return expect_error([&] { runs::load_model(dir / "x.safetensors"); });
  };
  // missing tensor
  auto fewer = state;
  fewer.erase(fewer.begin() + 3);
  EXPECT_NE(save_and_load(fewer, meta).find("missing tensors for this model: " + state[3].first), std::string::npos);
  // extra tensor
  auto more = state;
  more.emplace_back("branches.9.extra", torch::zeros({1}));
  EXPECT_NE(save_and_load(more, meta).find("does not have: branches.9.extra"), std::string::npos);
  // wrong shape
  auto wrong = state;
  wrong[0].second = torch::zeros({1, 2});
  EXPECT_NE(save_and_load(wrong, meta).find("'" + state[0].first + "' has shape [1, 2]"), std::string::npos);
  // no config
  EXPECT_NE(save_and_load(state, {}).find("not a DRIFA model file"), std::string::npos);
  // malformed config JSON and invalid values
  EXPECT_NE(save_and_load(state, {{runs::files::kConfigKey, "{oops"}}).find("metadata drifa.config: malformed JSON"), std::string::npos);
  EXPECT_NE(save_and_load(state, {{runs::files::kConfigKey, R"({"modalities":1})"}})
                .find("x.safetensors: drifa.config.modalities: found 1, allowed an integer from 2 to 64"),
            std::string::npos);
  // a model file for other modalities
  auto other = tiny();
  other.modalities = 3;
  EXPECT_NE(save_and_load(state, {{runs::files::kConfigKey, other.to_json().dump()}}).find("missing tensors"),
            std::string::npos);
}

TEST(ModelFile, AtomicWriteLeavesNoTemporaryFiles) {
  TempDir dir;
  DRIFANet net(tiny());
  runs::save_model(net, dir / "m.safetensors");
  runs::save_model(net, dir / "m.safetensors");  // overwrite
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(e.path().filename(), "m.safetensors");
  }
  EXPECT_EQ(files, 1);
  EXPECT_THROW(runs::save_model(net, dir / "no/such/folder/m.safetensors"), Error);
}

TEST(Config, InvalidConfigsGiveClearErrors) {
  auto msg = [](const nlohmann::json& j) { return expect_error([&] { ModelConfig::from_json(j); }); };
  EXPECT_NE(msg({{"modalities", 1}}).find("model config: modalities: found 1, allowed an integer from 2 to 64"), std::string::npos);
  EXPECT_NE(msg({{"classes", {5, 1}}}).find("classes[1]: found 1, allowed an integer from 2 to 10000"), std::string::npos);
  EXPECT_NE(msg({{"classes", nlohmann::json::array()}}).find("classes: found a list of 0 entries, allowed 1 to 64 entries"),
            std::string::npos);
  EXPECT_NE(msg({{"widths", {64}}}).find("widths: found a list of 1 entries, allowed 2 to 64 entries"), std::string::npos);
  EXPECT_NE(msg({{"widths", {64, 0}}}).find("widths[1]: found 0"), std::string::npos);
  EXPECT_NE(msg({{"dropout", 1.0}}).find("dropout: found 1, allowed a finite number in [0, 1)"), std::string::npos);
  EXPECT_NE(msg({{"attention", "both"}}).find("allowed none | mfa | mifa | drifa"), std::string::npos);
  EXPECT_NE(msg({{"modalitis", 2}}).find("modalitis: unknown key; allowed: modalities,"), std::string::npos);
  EXPECT_NE(msg({{"modalities", "two"}}).find("modalities: found \"two\" (a string), allowed an integer"), std::string::npos);
  EXPECT_NE(msg({{"image_size", 4}}).find("image_size: found 4, allowed an integer from 16 to 2048"), std::string::npos);
  EXPECT_NE(msg({{"modality_names", {"a"}}}).find("modality_names: found 1 names, allowed one per modality (2)"),
            std::string::npos);
  EXPECT_NE(expect_error([] { widths_preset("resnet50"); }).find("unknown widths preset"), std::string::npos);
  // JSON round trip
  auto c = ModelConfig::four_modality();
  c.attention = Attention::MIFA;
  EXPECT_EQ(ModelConfig::from_json(c.to_json()).to_json(), c.to_json());
}

TEST(Config, TomlSyntaxErrorsNameFileAndLine) {
  auto msg = expect_error([] { io::parse_toml("[model]\nmodalities = 2\nwidths = [1, 2\n", "cfg.toml"); });
  EXPECT_NE(msg.find("cfg.toml:"), std::string::npos) << msg;
  auto j = io::parse_toml("[model]\nmodalities = 3\nclasses = [2, 3]\ndropout = 0.5\nattention = \"mfa\"\n", "ok.toml");
  auto c = ModelConfig::from_json(j["model"]);
  EXPECT_EQ(c.modalities, 3);
  EXPECT_EQ(c.classes, (std::vector<int64_t>{2, 3}));
  EXPECT_DOUBLE_EQ(c.dropout, 0.5);
  EXPECT_EQ(c.attention, Attention::MFA);
  EXPECT_NE(expect_error([] { io::read_toml("/nonexistent.toml"); }).find("cannot open"), std::string::npos);
}
