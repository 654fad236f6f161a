#pragma once
// Unpaired models (the authors' setting: each task belongs to one modality, the other inputs are
// partners from other patients) predict from the images a case has by averaging over partners.
//
// A run keeps a seeded partner bank: per modality, images drawn uniformly from its training
// split (the distribution its training partners came from), stored at model size in
// partners.safetensors. An input plan says what the network is given: modalities absent for
// every case (paired models: drifa_net.h's presence mask) or, for unpaired models, K partners
// for every modality a case lacks; the case's probability is then the mean over its K rows,
// and the spread between partners is reported as its own uncertainty.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

#include "drifa/data/loader.h"
#include "drifa/data/sources.h"
#include "drifa/inputs/presence.h"
#include "drifa/model/config.h"

namespace drifa::inputs {

inline constexpr int64_t kBankSize = 32;        // images per modality kept by a run
inline constexpr int64_t kDefaultPartners = 8;  // partners averaged by default (README: measured)
inline constexpr const char* kBankKey = "drifa.partners";  // the bank file's metadata key

struct PartnerBank {
  std::vector<std::string> modalities;
  std::vector<torch::Tensor> images;              // per modality [N, C, S, S] float32 in [0, 1]
  std::vector<std::vector<std::string>> sources;  // per modality, the training images they are
  uint64_t seed = 0;
  int64_t size() const;  // the smallest N: partners available to every modality
};

// From an unpaired split: per modality min(n, |train|) training images in a seeded random order.
PartnerBank build_partner_bank(const data::PreparedData& d, data::ImageCache& cache, int64_t n, uint64_t seed);
void save_partner_bank(const std::string& path, const PartnerBank& bank);
// Checked against the model: its modalities in order, [N >= 1, C, S, S] float32 with values in
// [0, 1]. Throws drifa::Error naming the file.
PartnerBank load_partner_bank(const std::string& path, const ModelConfig& cfg);

// What the network is given.
struct InputPlan {
  Absent absent;                      // modalities absent for every case (empty: none)
  const PartnerBank* bank = nullptr;  // with partners > 0
  int64_t partners = 0;               // > 0: missing modalities are replaced by this many partners
  bool marginalising() const { return partners > 0; }
  // Throws for a plan the model cannot run: unknown lengths, too few partners, both at once.
  void check(const ModelConfig& cfg) const;
  // {"mode": "full" | "absent" | "partners", "present"/"absent" names, "partners": K}
  nlohmann::json to_json(const ModelConfig& cfg) const;
};

// keep[b][m]: case b's own image of modality m is used (x[m] may be undefined where no case
// keeps m). Without partners, every other modality is absent (the cases must agree). With
// partners, case b becomes rows b*K .. b*K+K-1, row b*K+j taking bank image j of every modality
// the case lacks.
struct Expanded {
  std::vector<torch::Tensor> inputs;
  int64_t per_case = 1;
};
Expanded expand(const std::vector<torch::Tensor>& x, const std::vector<std::vector<bool>>& keep, const InputPlan& plan);

// Evaluation rows of an unpaired model: each keeps the modality of its scored task (labels:
// per task [B], -1 where not scored). Paired rows keep every modality not absent in the plan.
std::vector<std::vector<bool>> kept_modalities(const std::vector<torch::Tensor>& labels, const InputPlan& plan,
                                               int64_t modalities);

// [B*K, ...] -> [B, K, ...]: the rows of each case side by side.
torch::Tensor by_case(const torch::Tensor& rows, int64_t per_case);

// The spread due to partners, from probabilities [S, B, K, C] (S model/pass samples, K partners):
//   information: H(mean over s, k) - mean_k H(mean over s)   (nats; the partner term of the
//                entropy decomposition, beside MC/ensemble mutual information and aleatoric)
//   sd:          the standard deviation over k of the predicted class's probability
struct PartnerSpread {
  torch::Tensor information, sd;  // [B] float64
};
PartnerSpread partner_spread(const torch::Tensor& probs);

}  // namespace drifa::inputs
