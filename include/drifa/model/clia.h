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
  // l1 = mean(sigmoid(conv1 x)), [B, C]: the full-resolution work.
  torch::Tensor pool(const torch::Tensor& x);
  // The end from l1 = mean(sigmoid(conv1 x)) ([B, C]): l1 + sigmoid(conv2 l1), as [B, C, 1, 1].
  torch::Tensor gate(const torch::Tensor& l1);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
};
TORCH_MODULE(CLIA);

}  // namespace drifa
