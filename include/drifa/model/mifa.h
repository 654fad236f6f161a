#pragma once
// MIFA: multimodal information fusion attention across M >= 2 modalities (spec section 3).
// MGIFA (global: min/avg/max pooled sums through one shared fc) and MLIFA (local: one 1x1 conv
// per modality) produce one attention map shared by all modalities; each modality keeps its alpha.
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/parameterdict.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace drifa {

class MIFAImpl : public torch::nn::Module {
 public:
  MIFAImpl(int64_t channels, int64_t modalities);
  // xs: M tensors [B, C, H, W] (H, W may differ between modalities) -> M tensors, same shapes.
  // An undefined xs[m] is an absent modality: left out of every sum over modalities, and its
  // output stays undefined. presence ([B, M] 0/1, optional) weighs each sample's terms the
  // same way, so a sample's absent modality adds nothing to the attention of the others.
  std::vector<torch::Tensor> forward(const std::vector<torch::Tensor>& xs, const torch::Tensor& presence = {});

  // The two halves, exposed for tests and analysis: both return [B, C, 1, 1].
  torch::Tensor mgifa(const std::vector<torch::Tensor>& xs, const torch::Tensor& presence = {});
  torch::Tensor mlifa(const std::vector<torch::Tensor>& xs, const torch::Tensor& presence = {});

  torch::nn::Linear fc{nullptr};        // shared C -> C
  torch::nn::ModuleList local{nullptr};  // M x Conv2d(C, C, 1)
  torch::Tensor global_scale;            // [1]
  torch::Tensor local_scale;             // [C]
  torch::nn::ParameterDict alpha{nullptr};  // "0".."M-1" -> [C]

 private:
  int64_t modalities_;
};
TORCH_MODULE(MIFA);

}  // namespace drifa
