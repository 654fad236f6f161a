#include "drifa/runs/model_file.h"

#include <cstdio>
#include <cstring>

#include <set>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "drifa/error.h"
#include "drifa/io/settings.h"

namespace drifa::runs {

namespace {
bool ends_with(const std::string& name, const std::string& suffix) {
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool is_counter(const std::string& name) { return ends_with(name, "num_batches_tracked"); }
}  // namespace

NamedTensors model_state(const torch::nn::Module& module) {
  NamedTensors out;
  for (const auto& p : module.named_parameters(true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(true))
    if (!is_counter(b.key())) out.emplace_back(b.key(), b.value());
  return out;
}

void load_state(torch::nn::Module& module, const NamedTensors& tensors, const std::string& source) {
  std::map<std::string, const torch::Tensor*> given;
  for (const auto& [n, t] : tensors) given[n] = &t;
  auto expected = model_state(module);
  std::vector<std::string> missing, extra;
  std::set<std::string> known;
  for (const auto& [n, t] : expected) {
    known.insert(n);
    if (!given.count(n)) missing.push_back(n);
  }
  for (const auto& [n, t] : given)
    if (!known.count(n)) extra.push_back(n);
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size() && i < 5; ++i) s += (i ? ", " : "") + v[i];
    if (v.size() > 5) s += ", ... (" + std::to_string(v.size()) + " in all)";
    return s;
  };
  if (!missing.empty()) throw Error(source + ": missing tensors for this model: " + list(missing));
  if (!extra.empty()) throw Error(source + ": tensors this model does not have: " + list(extra));
  torch::NoGradGuard no_grad;
  for (auto& [n, dst] : expected) {
    const auto& src = *given[n];
    if (src.sizes() != dst.sizes())
      throw Error(source + ": tensor '" + n + "' has shape " + c10::str(src.sizes()) + ", the model needs " +
                  c10::str(dst.sizes()));
    if (!src.is_floating_point())
      throw Error(source + ": tensor '" + n + "' is not floating point (" + c10::toString(src.scalar_type()) + ")");
    // A NaN or infinite weight makes every prediction NaN; refuse the file rather than answer null.
    const auto finite = torch::isfinite(src);
    if (!finite.all().item<bool>())
      throw Error(source + ": tensor '" + n + "' holds " + std::to_string((~finite).sum().item<int64_t>()) +
                  " non-finite values (NaN or infinity); the model file is corrupt");
    if (ends_with(n, "running_var") && src.numel() > 0 && src.min().item<double>() < 0)
      throw Error(source + ": tensor '" + n + "' (a BatchNorm running variance) has a negative entry (" +
                  std::to_string(src.min().item<double>()) + "); the model file is corrupt");
    dst.copy_(src);
  }
}

std::string weights_hash(const torch::nn::Module& module) {
  // FNV-1a over 8-byte words: fast enough to run on every load (about 1 GB/s).
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](uint64_t w) { h = (h ^ w) * 1099511628211ull; };
  auto mix_bytes = [&](const char* p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      mix(w);
    }
    uint64_t tail = 0;
    std::memcpy(&tail, p + i, n - i);
    mix(tail ^ (static_cast<uint64_t>(n - i) << 56));
  };
  for (const auto& [n, t] : model_state(module)) {
    mix_bytes(n.data(), n.size());
    for (auto d : t.sizes()) mix(static_cast<uint64_t>(d));
    const auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    mix_bytes(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.numel()) * sizeof(float));
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

void save_model(DRIFANet& net, const std::string& path, Metadata extra) {
  NamedTensors state;
  for (auto& [n, t] : model_state(*net)) state.emplace_back(n, t.detach().to(torch::kCPU, torch::kFloat32));
  extra["format"] = "pt";
  extra[files::kConfigKey] = net->config().to_json().dump();
  io::save_safetensors(path, state, extra);
}

ModelConfig read_model_config(const SafetensorsFile& file, const std::string& source) {
  auto it = file.metadata.find(files::kConfigKey);
  if (it == file.metadata.end())
    throw Error(source + ": no '" + std::string(files::kConfigKey) + "' in the metadata; not a DRIFA model file");
  return ModelConfig::from_json(settings::parse_json(it->second, source + ": metadata " + files::kConfigKey), source,
                                ModelConfig{}, files::kConfigKey);
}

LoadedModel load_model(const std::string& path) {
  auto file = io::load_safetensors(path);
  LoadedModel m;
  m.net = DRIFANet(read_model_config(file, path));
  load_state(*m.net, file.tensors, path);
  m.metadata = std::move(file.metadata);
  return m;
}

}  // namespace drifa::runs
