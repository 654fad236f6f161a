#pragma once
// DRIFANet: the whole TMFL forward pass (spec section 5).
//
//   per modality m:  h_m = stem_m(x_m)
//   for stage i:     h_m = RRA_i(h_m); dropout (i < n-2); h_m = MFA_i(h_m) (i < n-1)
//                    (h_1..h_M) = MIFA_i(h_1..h_M)
//   head:            f = GAP(dropout([h_1..h_M]));  logits_t = Linear_t(f)
//
// Absent modalities (a patient without one of the scans). An undefined input tensor means the
// modality is absent for the whole batch: its branch is skipped, MIFA's sums over modalities
// run over the present ones only, and the head sees zeros in its place. ForwardOptions::presence
// says the same per sample (training with modality dropout): MIFA weighs each sample's terms by
// its 0/1 presence and the head's input is multiplied by it, so an absent sample's branch
// reaches neither the other modalities nor the head, and the outputs equal the skipped branch's.
// The branch itself keeps running on the sample's image, so its BatchNorm statistics in
// training come from real feature maps, not from zeros. With every modality present nothing
// changes.
//
// What Grad-CAM and t-SNE need (stage outputs, fused features) is returned by forward():
// LibTorch has no module hooks.
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "drifa/model/branch.h"
#include "drifa/model/config.h"
#include "drifa/model/mifa.h"

namespace drifa {

// Train:    dropout on, BN batch statistics (updates running stats)
// Eval:     dropout off, BN running statistics; deterministic
// MCSample: dropout on, BN running statistics; the Monte Carlo sampling of spec section 7
enum class Mode { Train, Eval, MCSample };

struct ForwardOptions {
  bool keep_stages = false;  // return every stage output (for Grad-CAM); costs memory
  // Monte Carlo dropout with reproducible masks: one CPU generator per batch row. Row r's masks
  // are drawn from dropout_rngs[r] alone, site after site, so a sample's masks do not depend on
  // the batch it shares, how passes are grouped or whether the prefix was shared.
  // Empty: torch's global generator (training).
  std::vector<at::Generator> dropout_rngs;
  // [B, M] 0/1 (float): which modalities each sample has; undefined = all. See the top.
  torch::Tensor presence;
};

struct ForwardResult {
  std::vector<torch::Tensor> logits;  // per task, [B, K_t]
  torch::Tensor features;             // fused features GAP([h_1..h_M]) before head dropout, [B, M*w_last]
  // stages[i][m]: modality m after stage i (after fusion), only with keep_stages; undefined
  // for an absent modality
  std::vector<std::vector<torch::Tensor>> stages;
};

class DRIFANetImpl : public torch::nn::Module {
 public:
  explicit DRIFANetImpl(const ModelConfig& cfg);

  // inputs: M tensors [B, in_channels, H, W] with values in [0, 1]; an undefined tensor marks an
  // absent modality (at least one must be present).
  ForwardResult forward(const std::vector<torch::Tensor>& inputs, const ForwardOptions& opt = {});

  // The forward pass in two parts, so deterministic work can be shared between Monte Carlo
  // passes: prefix() runs everything before the first dropout (stems and the first RRA block).
  std::vector<torch::Tensor> prefix(const std::vector<torch::Tensor>& inputs);
  ForwardResult suffix(std::vector<torch::Tensor> h, const ForwardOptions& opt = {});

  void set_mode(Mode mode);
  Mode mode() const;
  bool dropout_active() const { return is_training() || mc_sampling_; }

  const ModelConfig& config() const { return cfg_; }

  torch::nn::ModuleList branches{nullptr};  // M x Branch
  torch::nn::ModuleList fusions{nullptr};   // n x MIFA (empty without MIFA)
  torch::nn::ModuleList heads{nullptr};     // T x Linear

 private:
  void check_inputs(const std::vector<torch::Tensor>& inputs) const;
  void check_presence(const torch::Tensor& presence, int64_t batch) const;
  void run_stage(int64_t i, std::vector<torch::Tensor>& h, bool with_block, const ForwardOptions& opt);
  torch::Tensor dropout(const torch::Tensor& x, const ForwardOptions& opt) const;

  ModelConfig cfg_;
  std::vector<Branch> branch_;
  std::vector<MIFA> fusion_;
  std::vector<torch::nn::Linear> head_;
  bool mc_sampling_ = false;
};
TORCH_MODULE(DRIFANet);

// Puts the model in a mode for the life of the guard and restores the mode it had, also when the
// scope is left by an exception (a bad request must not leave a served model in Train mode).
class ModeGuard {
 public:
  ModeGuard(DRIFANet& net, Mode mode) : net_(net), before_(net->mode()) { net_->set_mode(mode); }
  ~ModeGuard() { net_->set_mode(before_); }
  ModeGuard(const ModeGuard&) = delete;
  ModeGuard& operator=(const ModeGuard&) = delete;

 private:
  DRIFANet& net_;
  Mode before_;
};

// Glorot-uniform weights and zero biases for every conv and linear layer (the authors' Keras
// defaults); BN gamma 1, beta 0; the learnable attention scales stay at 1.
void initialise(torch::nn::Module& module);

// Trainable parameter count (BN running stats excluded, PyTorch convention).
int64_t count_parameters(const torch::nn::Module& module);

}  // namespace drifa
