#pragma once
// The one place a model is run for inference (MONAI's inferers): evaluate, uq, calibrate, cv,
// predict, serve, Grad-CAM and t-SNE all come through here. The inferer moves rows to the
// device, puts the model in Eval mode (MCSample for Monte Carlo passes), turns autograd off,
// applies the autocast asked for and returns float32 probabilities on the CPU; so none of its
// callers repeats that, and none can forget a piece of it.
#include <cstdint>
#include <vector>

#include "drifa/data/loader.h"
#include "drifa/inference/mc_sampler.h"
#include "drifa/inputs/partners.h"
#include "drifa/model/drifa_net.h"

namespace drifa::inference {

struct InferOptions {
  InferOptions(torch::Device device = torch::kCPU, bool bf16 = false, std::vector<double> temperatures = {},
               inputs::InputPlan plan = {})
      : device(device), bf16(bf16), temperatures(std::move(temperatures)), plan(std::move(plan)) {}
  torch::Device device;
  bool bf16;                         // autocast: bfloat16 on the CPU, float16 on CUDA
  std::vector<double> temperatures;  // per task: probabilities = softmax(logits / T); empty = 1
  // What the network is given: every modality (default), some absent, or (unpaired) P partners
  // for every modality but the one of each row's task (inputs/partners.h).
  inputs::InputPlan plan;
  bool features = false;  // keep the fused features (t-SNE)
};

// One deterministic pass over R rows (R = cases x per_case partner rows).
struct Pass {
  std::vector<torch::Tensor> rows;    // the expanded inputs on the device (undefined: absent)
  std::vector<torch::Tensor> prefix;  // DRIFANet::prefix of the rows, which Monte Carlo passes share
  std::vector<int64_t> ids;           // per row: case id x per_case + partner, what seeds its dropout masks
  int64_t per_case = 1;
  std::vector<torch::Tensor> probs;   // per task [R, K_t] float32 on the CPU
  torch::Tensor features;             // with InferOptions::features: [R, F] float64 on the CPU
};

class Inferer {
 public:
  Inferer(DRIFANet& net, InferOptions opt);
  const ModelConfig& config() const { return net_->config(); }
  const InferOptions& options() const { return opt_; }
  DRIFANet& net() { return net_; }

  // A loader batch, expanded by the plan; case ids are the examples' indices.
  Pass batch(const data::Batch& b);
  // Rows already laid out: per_case partner rows per case, ids as above.
  Pass rows(std::vector<torch::Tensor> rows, int64_t per_case, std::vector<int64_t> ids);
  // The same without the deterministic pass (rows, ids and the shared prefix only): for callers
  // that want Monte Carlo passes alone.
  Pass prepare(std::vector<torch::Tensor> rows, int64_t per_case, std::vector<int64_t> ids);
  // Monte Carlo dropout passes over a pass's rows, per task [passes, R, K_t]: sharing its prefix,
  // or (opt.share_prefix false) the naive loop of full forward passes; the same masks either way.
  std::vector<torch::Tensor> mc(const Pass& p, const MCOptions& opt);
  // One pass with autograd on and every stage's output kept (Grad-CAM differentiates a logit
  // with respect to a stage map); Eval mode, full precision.
  ForwardResult with_stages(const std::vector<torch::Tensor>& rows);

 private:
  DRIFANet& net_;
  InferOptions opt_;
};

// Per task [R, K] -> [B, P, K]: each case's partner rows side by side (inputs::by_case).
std::vector<torch::Tensor> by_case(const std::vector<torch::Tensor>& probs, int64_t per_case);

}  // namespace drifa::inference
