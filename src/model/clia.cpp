#include "drifa/model/clia.h"

#include <torch/torch.h>

namespace drifa {

CLIAImpl::CLIAImpl(int64_t c) {
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(c, c, 1).bias(true)));
  conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(c, c, 1).bias(true)));
}

torch::Tensor CLIAImpl::forward(const torch::Tensor& x) { return gate(pool(x)); }

torch::Tensor CLIAImpl::pool(const torch::Tensor& x) { return torch::sigmoid(conv1(x)).mean({2, 3}); }

torch::Tensor CLIAImpl::gate(const torch::Tensor& l1) {
  // conv2 sees a 1x1 map: it is a linear layer on [B, C], run as one (same weights, same names).
  const auto c = l1.size(1);
  auto l2 = torch::sigmoid(torch::linear(l1, conv2->weight.reshape({c, c}), conv2->bias));
  return (l1 + l2).unsqueeze(-1).unsqueeze(-1);
}

}  // namespace drifa
