#include "drifa/inputs/partners.h"

#include <algorithm>
#include <numeric>
#include <random>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "drifa/data/split.h"
#include "drifa/data/transforms.h"
#include "drifa/error.h"
#include "drifa/io/safetensors.h"

namespace drifa::inputs {

int64_t PartnerBank::size() const {
  int64_t n = images.empty() ? 0 : images[0].size(0);
  for (const auto& t : images) n = std::min(n, t.size(0));
  return n;
}

PartnerBank build_partner_bank(const data::PreparedData& d, data::ImageCache& cache, int64_t n, uint64_t seed) {
  if (d.paired) throw Error("a partner bank belongs to unpaired data; a paired case has all its own images");
  PartnerBank bank;
  bank.seed = seed;
  for (size_t m = 0; m < d.train.size(); ++m) {
    const auto& recs = d.train[m].records;
    if (recs.empty()) throw Error("modality " + d.modalities[m] + ": no training images for a partner bank");
    std::vector<size_t> order(recs.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::mt19937_64 rng(data::mix_seed(seed, 0x9A, m));
    std::shuffle(order.begin(), order.end(), rng);
    order.resize(std::min<size_t>(order.size(), static_cast<size_t>(n)));
    std::vector<torch::Tensor> imgs;
    std::vector<std::string> src;
    for (auto i : order) {
      imgs.push_back(data::to_tensor(cache.get(recs[i].path)));
      src.push_back(recs[i].path);
    }
    bank.modalities.push_back(d.modalities[m]);
    bank.images.push_back(torch::stack(imgs));
    bank.sources.push_back(src);
  }
  return bank;
}

void save_partner_bank(const std::string& path, const PartnerBank& bank) {
  io::NamedTensors t;
  for (size_t m = 0; m < bank.images.size(); ++m) t.emplace_back("partners." + std::to_string(m), bank.images[m]);
  const nlohmann::json meta = {{"modalities", bank.modalities}, {"sources", bank.sources}, {"seed", bank.seed}};
  io::save_safetensors(path, t, {{kBankKey, meta.dump()}});
}

PartnerBank load_partner_bank(const std::string& path, const ModelConfig& cfg) {
  const auto f = io::load_safetensors(path);
  auto fail = [&](const std::string& what) { throw Error(path + ": partner bank: " + what); };
  const auto it = f.metadata.find(kBankKey);
  if (it == f.metadata.end()) fail("no '" + std::string(kBankKey) + "' metadata; not a partner bank");
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(it->second);
  } catch (const std::exception& e) {
    fail(std::string("metadata is not JSON: ") + e.what());
  }
  PartnerBank bank;
  try {
    bank.modalities = meta.at("modalities").get<std::vector<std::string>>();
    bank.sources = meta.at("sources").get<std::vector<std::vector<std::string>>>();
    bank.seed = meta.at("seed").get<uint64_t>();
  } catch (const std::exception& e) {
    fail(std::string("metadata: ") + e.what());
  }
  if (static_cast<int64_t>(bank.modalities.size()) != cfg.modalities || bank.sources.size() != bank.modalities.size())
    fail("has " + std::to_string(bank.modalities.size()) + " modalities, the model " + std::to_string(cfg.modalities));
  for (int64_t m = 0; m < cfg.modalities; ++m) {
    const auto name = cfg.modality_name(m);
    if (bank.modalities[static_cast<size_t>(m)] != name)
      fail("modality " + std::to_string(m) + " is '" + bank.modalities[static_cast<size_t>(m)] + "', the model's '" + name + "'");
    const auto* x = f.find("partners." + std::to_string(m));
    if (!x) fail("no tensor partners." + std::to_string(m));
    if (x->scalar_type() != torch::kFloat32 || x->dim() != 4 || x->size(0) < 1 || x->size(1) != cfg.in_channels ||
        x->size(2) != cfg.image_size || x->size(3) != cfg.image_size)
      fail(name + ": expected float32 [N, " + std::to_string(cfg.in_channels) + ", " + std::to_string(cfg.image_size) + ", " +
           std::to_string(cfg.image_size) + "], found " + std::string(c10::toString(x->scalar_type())) + " " + c10::str(x->sizes()));
    if (static_cast<int64_t>(bank.sources[static_cast<size_t>(m)].size()) != x->size(0))
      fail(name + ": " + std::to_string(x->size(0)) + " images but " + std::to_string(bank.sources[static_cast<size_t>(m)].size()) +
           " sources");
    if (!x->isfinite().all().item<bool>() || x->min().item<float>() < 0 || x->max().item<float>() > 1)
      fail(name + ": values outside [0, 1]");
    bank.images.push_back(*x);
  }
  return bank;
}

void InputPlan::check(const ModelConfig& cfg) const {
  if (!absent.empty() && static_cast<int64_t>(absent.size()) != cfg.modalities)
    throw Error("input plan: " + std::to_string(absent.size()) + " absent flags for " + std::to_string(cfg.modalities) + " modalities");
  if (partners < 0) throw Error("partners must be at least 1, got " + std::to_string(partners));
  if (!marginalising()) return;
  if (std::any_of(absent.begin(), absent.end(), [](bool a) { return a; }))
    throw Error("absent modalities and partners exclude each other: a partner stands in for the missing image");
  if (!bank) throw Error("partners asked for, but there is no partner bank (an unpaired run folder, or --partners-from RUN_DIR)");
  if (static_cast<int64_t>(bank->images.size()) != cfg.modalities)
    throw Error("the partner bank has " + std::to_string(bank->images.size()) + " modalities, the model " + std::to_string(cfg.modalities));
  if (partners > bank->size())
    throw Error(std::to_string(partners) + " partners asked for; the bank holds " + std::to_string(bank->size()) + " per modality");
}

nlohmann::json InputPlan::to_json(const ModelConfig& cfg) const {
  auto j = pattern_json(absent, cfg);
  const bool any_absent = std::any_of(absent.begin(), absent.end(), [](bool a) { return a; });
  j["mode"] = marginalising() ? "partners" : any_absent ? "absent" : "full";
  j["partners"] = marginalising() ? nlohmann::json(partners) : nlohmann::json(nullptr);
  return j;
}

Expanded expand(const std::vector<torch::Tensor>& x, const std::vector<std::vector<bool>>& keep, const InputPlan& plan) {
  const int64_t M = static_cast<int64_t>(x.size());
  const int64_t B = static_cast<int64_t>(keep.size());
  Expanded e;
  if (!plan.marginalising()) {
    e.inputs = x;
    for (int64_t m = 0; m < M; ++m) {
      const bool kept0 = B > 0 && keep[0][static_cast<size_t>(m)];
      for (const auto& row : keep)
        if (row[static_cast<size_t>(m)] != kept0)
          throw Error("without partners, every case of a batch must have the same modalities");
      const bool absent = static_cast<size_t>(m) < plan.absent.size() && plan.absent[static_cast<size_t>(m)];
      if (!kept0 || absent) e.inputs[static_cast<size_t>(m)] = torch::Tensor();
    }
    return e;
  }
  const int64_t K = plan.partners;
  e.per_case = K;
  for (int64_t m = 0; m < M; ++m) {
    const auto& own = x[static_cast<size_t>(m)];
    torch::Tensor bank;
    std::vector<torch::Tensor> rows;
    rows.reserve(static_cast<size_t>(B * K));
    for (int64_t b = 0; b < B; ++b) {
      if (keep[static_cast<size_t>(b)][static_cast<size_t>(m)]) {
        if (!own.defined()) throw Error("case " + std::to_string(b) + " keeps modality " + std::to_string(m) + " but has no image of it");
        rows.push_back(own[b].unsqueeze(0).expand({K, -1, -1, -1}));
      } else {
        if (!bank.defined()) {
          const auto dev = own.defined() ? own.device() : torch::Device(torch::kCPU);
          bank = plan.bank->images[static_cast<size_t>(m)].narrow(0, 0, K).to(dev);
        }
        rows.push_back(bank);
      }
    }
    e.inputs.push_back(torch::cat(rows, 0));
  }
  return e;
}

std::vector<std::vector<bool>> kept_modalities(const std::vector<torch::Tensor>& labels, const InputPlan& plan,
                                               int64_t modalities) {
  const int64_t B = labels.empty() ? 0 : labels[0].size(0);
  std::vector<std::vector<bool>> keep(static_cast<size_t>(B), std::vector<bool>(static_cast<size_t>(modalities), true));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t m = 0; m < modalities; ++m) {
      if (plan.marginalising()) {
        // An unpaired row is scored for one task, the task of modality m == t.
        keep[static_cast<size_t>(b)][static_cast<size_t>(m)] =
            static_cast<size_t>(m) < labels.size() && labels[static_cast<size_t>(m)][b].item<int64_t>() >= 0;
      } else {
        keep[static_cast<size_t>(b)][static_cast<size_t>(m)] =
            !(static_cast<size_t>(m) < plan.absent.size() && plan.absent[static_cast<size_t>(m)]);
      }
    }
  return keep;
}

torch::Tensor by_case(const torch::Tensor& rows, int64_t per_case) {
  auto shape = rows.sizes().vec();
  shape[0] = rows.size(0) / per_case;
  shape.insert(shape.begin() + 1, per_case);
  return rows.reshape(shape);
}

namespace {

torch::Tensor entropy(const torch::Tensor& p) { return -(p * p.clamp_min(1e-300).log()).sum(-1); }

}  // namespace

PartnerSpread partner_spread(const torch::Tensor& probs) {
  TORCH_CHECK(probs.dim() == 4, "partner_spread: probabilities must be [S, B, K, C]");
  const auto p = probs.to(torch::kFloat64);
  const auto per_partner = p.mean(0);      // [B, K, C]
  const auto mean = per_partner.mean(1);   // [B, C]
  PartnerSpread s;
  s.information = (entropy(mean) - entropy(per_partner).mean(1)).clamp_min(0);
  const auto pred = mean.argmax(1);        // [B]
  const auto picked = per_partner.gather(2, pred.view({-1, 1, 1}).expand({-1, per_partner.size(1), 1})).squeeze(2);  // [B, K]
  s.sd = per_partner.size(1) > 1 ? picked.std(1, /*unbiased=*/false) : torch::zeros({picked.size(0)}, torch::kFloat64);
  return s;
}

}  // namespace drifa::inputs
