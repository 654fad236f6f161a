#include "drifa/model/hifa.h"

#include <torch/torch.h>

#include "drifa/model/spatial_stats.h"

namespace drifa {

namespace {
torch::nn::Conv2d pointwise(int64_t c) { return torch::nn::Conv2d(torch::nn::Conv2dOptions(c, c, 1).bias(true)); }
}  // namespace

HIFAImpl::HIFAImpl(int64_t c) {
  conv1 = register_module("conv1", pointwise(c));
  conv2 = register_module("conv2", pointwise(c));
  conv3 = register_module("conv3", pointwise(c));
  conv4 = register_module("conv4", pointwise(c));
  fc = register_module("fc", torch::nn::Linear(2 * c, c));
}

torch::Tensor HIFAImpl::forward(const torch::Tensor& x) {
  const auto [s1, s2] = levels(x);
  return gate(s1, s2);
}

std::pair<torch::Tensor, torch::Tensor> HIFAImpl::levels(const torch::Tensor& x) {
  // Two levels; each level pools its pair of maps (average of the first, max of the second).
  auto a1 = torch::sigmoid(conv1(x));
  auto a2 = torch::sigmoid(conv2(a1));
  auto s1 = a1.mean({2, 3}) + spatial_max(a2);
  auto a3 = torch::sigmoid(conv3(a1 + a2));
  // a4 = sigmoid(conv4(a3)) is only max-pooled, and sigmoid is increasing: pool conv4's output and
  // take the sigmoid of [B, C] values instead of a full map (same value; same gradient, as
  // sigmoid' is 0 where sigmoid saturates into ties).
  torch::Tensor gmp_a4 = fused_attention() ? torch::sigmoid(spatial_max(conv4(a3)))
                                           : torch::sigmoid(conv4(a3)).amax({2, 3});
  return {s1, a3.mean({2, 3}) + gmp_a4};
}

torch::Tensor HIFAImpl::gate(const torch::Tensor& s1, const torch::Tensor& s2) {
  return torch::sigmoid(fc(torch::cat({s1, s2}, 1))).unsqueeze(-1).unsqueeze(-1);
}

}  // namespace drifa
