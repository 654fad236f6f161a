#pragma once
// One modality's branch: the stem and the stages (spec section 5). Branches share no weights.
// The branch does not run its stages itself: the network steps all branches through stage i
// in lockstep, because MIFA fuses them after every stage.
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include "drifa/model/config.h"
#include "drifa/model/mfa.h"
#include "drifa/model/rra.h"

namespace drifa {

// conv 7x7/2 -> MFA -> BN -> ReLU -> max-pool 3x3/2
class StemImpl : public torch::nn::Module {
 public:
  StemImpl(int64_t in_channels, int64_t width, bool with_mfa, double bn_momentum = 0.01);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv{nullptr};
  MFA mfa{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
};
TORCH_MODULE(Stem);

// Stage i of a branch: the RRA block and the optional post-block MFA (absent for the last stage).
class StageImpl : public torch::nn::Module {
 public:
  StageImpl(int64_t in_channels, int64_t out_channels, int64_t stride, bool with_mfa, bool post_mfa,
            double bn_momentum = 0.01);
  RRA rra{nullptr};
  MFA mfa{nullptr};
};
TORCH_MODULE(Stage);

class BranchImpl : public torch::nn::Module {
 public:
  explicit BranchImpl(const ModelConfig& cfg);
  Stem stem{nullptr};
  std::vector<Stage> stages;  // also registered as the ModuleList "stages"
};
TORCH_MODULE(Branch);

// Stride of stage i: 2 where the width changes, else 1 (spec section 5).
int64_t stage_stride(const std::vector<int64_t>& widths, int64_t i);

}  // namespace drifa
