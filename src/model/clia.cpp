#include "drifa/model/clia.h"

#include <torch/torch.h>

namespace drifa {

CLIAImpl::CLIAImpl(int64_t c) {
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(c, c, 1).bias(true)));
  conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(c, c, 1).bias(true)));
}

torch::Tensor CLIAImpl::forward(const torch::Tensor& x) {
  auto l1 = torch::sigmoid(conv1(x)).mean({2, 3}, /*keepdim=*/true);
  auto l2 = torch::sigmoid(conv2(l1));
  return l1 + l2;
}

}  // namespace drifa
