#pragma once
// Adam whose update is one pass over each parameter (optim/fused_adam.cpp).
//
// torch::optim::Adam runs about ten ATen ops per parameter tensor and step (two moment updates,
// sqrt, bias corrections, addcdiv), each a dispatch and a pass over memory. DRIFA-Net has many
// small parameters (every attention block adds four 1x1 convolutions, a linear layer and three
// scales): at the demo's widths 1060 tensors, where that per-op cost is most of the optimiser's
// time. FusedAdam is an Adam: same options, same per-parameter state (so checkpoints written by
// either load into the other), same arithmetic in the same order; it only replaces step() for
// float32 CPU tensors, and hands anything else (other dtypes, devices, amsgrad) to Adam::step.
// Any dense layout fuses (channels-last weights too) when a gradient has its parameter's strides
// wherever a dimension's size is over 1.
#include <torch/torch.h>

namespace drifa {

class FusedAdam : public torch::optim::Adam {
 public:
  FusedAdam(std::vector<torch::Tensor> params, torch::optim::AdamOptions options);
  torch::Tensor step(LossClosure closure = nullptr) override;
  // Whether step() would take the one-pass path with the gradients as they are now.
  bool fusable() const;
};

// Parameter p's Adam state in opt (nullptr before p's first step), whichever way this LibTorch
// keys its optimiser state.
torch::optim::AdamParamState* adam_state(torch::optim::Adam& opt, const torch::Tensor& p);

}  // namespace drifa
