#pragma once
// CLIA: channel-wise local information attention, the local half of MFA (spec section 2).
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

namespace drifa {

class CLIAImpl : public torch::nn::Module {
 public:
  explicit CLIAImpl(int64_t channels);
  // x [B, C, H, W] -> l [B, C, 1, 1]
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
};
TORCH_MODULE(CLIA);

}  // namespace drifa
