#include "drifa/inputs/presence.h"

#include <algorithm>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "drifa/error.h"

namespace drifa::inputs {

Absent parse_absent(const std::vector<std::string>& names, const ModelConfig& cfg, const std::string& source) {
  Absent absent(static_cast<size_t>(cfg.modalities), false);
  std::string known;
  for (int64_t m = 0; m < cfg.modalities; ++m) known += (m ? ", " : "") + cfg.modality_name(m);
  for (const auto& list : names) {
    size_t start = 0;
    while (start <= list.size()) {
      const auto end = std::min(list.find(',', start), list.size());
      const auto name = list.substr(start, end - start);
      start = end + 1;
      bool found = false;
      for (int64_t m = 0; m < cfg.modalities; ++m)
        if (cfg.modality_name(m) == name) absent[static_cast<size_t>(m)] = found = true;
      if (!found) throw Error(source + ": no modality named '" + name + "'; the model's modalities are " + known);
    }
  }
  if (std::all_of(absent.begin(), absent.end(), [](bool a) { return a; }))
    throw Error(source + ": every modality would be absent; the model needs at least one of " + known);
  return absent;
}

std::vector<Absent> missing_patterns(int64_t modalities) {
  std::vector<Absent> out;
  const int64_t all = (int64_t(1) << modalities) - 1;
  for (int64_t k = 0; k < modalities; ++k)  // k modalities absent
    for (int64_t bits = 0; bits < all; ++bits) {
      if (__builtin_popcountll(static_cast<unsigned long long>(bits)) != k) continue;
      Absent a(static_cast<size_t>(modalities));
      for (int64_t m = 0; m < modalities; ++m) a[static_cast<size_t>(m)] = (bits >> m) & 1;
      out.push_back(a);
    }
  return out;
}

std::string pattern_name(const Absent& absent, const ModelConfig& cfg) {
  std::string s;
  for (size_t m = 0; m < absent.size(); ++m)
    if (absent[m]) s += (s.empty() ? "" : "+") + cfg.modality_name(static_cast<int64_t>(m));
  return s.empty() ? "none" : s;
}

nlohmann::json pattern_json(const Absent& absent, const ModelConfig& cfg) {
  nlohmann::json present = nlohmann::json::array(), gone = nlohmann::json::array();
  for (int64_t m = 0; m < cfg.modalities; ++m) {
    const bool a = static_cast<size_t>(m) < absent.size() && absent[static_cast<size_t>(m)];
    (a ? gone : present).push_back(cfg.modality_name(m));
  }
  return {{"present", present}, {"absent", gone}};
}

std::vector<torch::Tensor> drop_absent(std::vector<torch::Tensor> x, const Absent& absent) {
  for (size_t m = 0; m < x.size() && m < absent.size(); ++m)
    if (absent[m]) x[m] = torch::Tensor();
  return x;
}

torch::Tensor modality_dropout_mask(int64_t batch, int64_t modalities, double q, uint64_t seed) {
  if (q < 0 || q >= 1) throw Error("modality dropout must be in [0, 1), got " + std::to_string(q));
  auto g = at::detail::createCPUGenerator(seed);
  const auto u = at::rand({batch, modalities}, g, torch::TensorOptions().dtype(torch::kFloat32));
  auto keep = u.ge(q).to(torch::kFloat32);
  auto acc = keep.accessor<float, 2>();
  const auto ua = u.accessor<float, 2>();
  for (int64_t b = 0; b < batch; ++b) {
    bool any = false;
    for (int64_t m = 0; m < modalities; ++m) any = any || acc[b][m] > 0;
    if (any) continue;
    // Every draw fell below q; rescaled, the first one picks the survivor uniformly.
    const auto m = std::min<int64_t>(modalities - 1, static_cast<int64_t>(ua[b][0] / q * double(modalities)));
    acc[b][m] = 1;
  }
  return keep;
}

}  // namespace drifa::inputs
