#pragma once
// HIFA: hierarchical information fusion attention, the global half of MFA (spec section 2).
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <utility>

namespace drifa {

class HIFAImpl : public torch::nn::Module {
 public:
  explicit HIFAImpl(int64_t channels);
  // x [B, C, H, W] -> g [B, C, 1, 1] in (0, 1)
  torch::Tensor forward(const torch::Tensor& x);
  // The chain's two level descriptors s1, s2, each [B, C]: the full-resolution work, all of it
  // before gate().
  std::pair<torch::Tensor, torch::Tensor> levels(const torch::Tensor& x);
  // The end of the chain from its two level descriptors s1, s2 ([B, C]): sigmoid(fc([s1, s2])).
  torch::Tensor gate(const torch::Tensor& s1, const torch::Tensor& s2);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr}, conv4{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(HIFA);

}  // namespace drifa
