#include "drifa/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "drifa/error.h"
#include "drifa/io/atomic_file.h"
#include "drifa/io/settings.h"

namespace drifa::io {

namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // the format's own limit is 100 MB

struct DTypeName {
  const char* name;
  torch::ScalarType type;
};
const DTypeName kDTypes[] = {
    {"F32", torch::kFloat32}, {"F64", torch::kFloat64}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
    {"I8", torch::kInt8},     {"I16", torch::kInt16},   {"I32", torch::kInt32},   {"I64", torch::kInt64},
    {"U8", torch::kUInt8},    {"BOOL", torch::kBool},
};

const char* dtype_name(torch::ScalarType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d.name;
  throw Error(std::string("safetensors: unsupported tensor dtype ") + c10::toString(t));
}

bool parse_dtype(const std::string& s, torch::ScalarType* out) {
  for (const auto& d : kDTypes)
    if (s == d.name) {
      *out = d.type;
      return true;
    }
  return false;
}

}  // namespace

const torch::Tensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

std::string encode_safetensors(const NamedTensors& tensors, const Metadata& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name.empty() || name == "__metadata__") throw Error("safetensors: invalid tensor name '" + name + "'");
    if (header.contains(name)) throw Error("safetensors: duplicate tensor name '" + name + "'");
    auto c = t.detach().to(torch::kCPU).contiguous();
    const uint64_t bytes = c.numel() * c.element_size();
    header[name] = {{"dtype", dtype_name(c.scalar_type())},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(c);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
  std::string out;
  out.reserve(8 + h.size() + offset);
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += h;
  for (const auto& c : data) out.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  return out;
}

void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata) {
  const std::string bytes = encode_safetensors(tensors, metadata);
  atomic_write(path, [&](std::ostream& o) { o.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}

SafetensorsFile decode_safetensors(const std::string& bytes, const std::string& source) {
  auto fail = [&](const std::string& what) -> void { throw Error(source + ": not a valid safetensors file: " + what); };
  if (bytes.size() < 8) fail("truncated (" + std::to_string(bytes.size()) + " bytes, the header length alone is 8)");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  if (n > bytes.size() - 8)
    fail("header length " + std::to_string(n) + " is larger than the file (" + std::to_string(bytes.size()) +
         " bytes); the file is truncated or not safetensors");
  if (n > kMaxHeader) fail("header length " + std::to_string(n) + " exceeds 100 MB");
  // parse_json refuses duplicate tensor names (plain JSON parsing would keep the later silently).
  const nlohmann::json header = settings::parse_json(bytes.substr(8, n), source + ": safetensors header");
  if (!header.is_object()) fail("header is not a JSON object");

  SafetensorsFile file;
  const uint64_t data_size = bytes.size() - 8 - n;
  const char* data = bytes.data() + 8 + n;
  struct Entry {
    std::string name;
    torch::ScalarType type;
    std::vector<int64_t> shape;
    uint64_t begin, end;
  };
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const auto& v = it.value();
    if (it.key() == "__metadata__") {
      if (!v.is_object()) fail("__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail("__metadata__ value '" + m.key() + "' is not a string");
        if (m.value().get_ref<const std::string&>().size() > kMaxHeader) fail("__metadata__ value is too long");
        file.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor " + settings::show(it.key());
    if (it.key().empty() || it.key().size() > 1000 || it.key().find('\0') != std::string::npos)
      fail("a tensor name is empty, longer than 1000 bytes or holds a NUL byte");
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      fail(where + " needs dtype, shape and data_offsets");
    Entry e{it.key(), torch::kFloat32, {}, 0, 0};
    if (!v["dtype"].is_string() || !parse_dtype(v["dtype"].get<std::string>(), &e.type))
      fail(where + " has an unsupported dtype " + v["dtype"].dump());
    if (!v["shape"].is_array()) fail(where + " shape is not a list");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) fail(where + " shape has a negative or non-integer entry");
      const uint64_t x = d.get<uint64_t>();
      if (x > (1ull << 40) || (x && numel > (1ull << 40) / x)) fail(where + " shape is implausibly large");
      numel *= x;
      e.shape.push_back(static_cast<int64_t>(x));
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(where + " data_offsets must be two non-negative integers");
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.begin > e.end) fail(where + " data_offsets are reversed");
    if (e.end > data_size)
      fail(where + " ends at byte " + std::to_string(e.end) + " but the data section has only " +
           std::to_string(data_size) + " bytes (truncated file?)");
    const uint64_t want = numel * c10::elementSize(e.type);
    if (e.end - e.begin != want)
      fail(where + " holds " + std::to_string(e.end - e.begin) + " bytes but its dtype and shape need " +
           std::to_string(want));
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < entries.size(); ++i)
    if (entries[i].begin < entries[i - 1].end)
      fail("tensors '" + entries[i - 1].name + "' and '" + entries[i].name + "' overlap");
  for (const auto& e : entries) {
    auto t = torch::empty(e.shape, torch::TensorOptions().dtype(e.type));
    if (e.end > e.begin) std::memcpy(t.data_ptr(), data + e.begin, e.end - e.begin);
    file.tensors.emplace_back(e.name, t);
  }
  return file;
}

SafetensorsFile load_safetensors(const std::string& path) {
  return decode_safetensors(read_file(path, "safetensors file"), path);
}

}  // namespace drifa::io
