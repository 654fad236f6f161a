#include "drifa/model/rra.h"

#include <torch/torch.h>

namespace drifa {

torch::nn::BatchNorm2d make_batchnorm(int64_t c, double momentum) {
  return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(c).eps(1e-3).momentum(momentum));
}

ShortcutImpl::ShortcutImpl(int64_t in, int64_t out, int64_t stride, double bn_momentum) {
  conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).stride(stride).bias(true)));
  bn = register_module("bn", make_batchnorm(out, bn_momentum));
}

torch::Tensor ShortcutImpl::forward(const torch::Tensor& x) { return bn(conv(x)); }

RRAImpl::RRAImpl(int64_t in, int64_t out, int64_t stride, bool with_mfa, double bn_momentum) {
  auto conv3x3 = [](int64_t i, int64_t o, int64_t s) {
    return torch::nn::Conv2d(torch::nn::Conv2dOptions(i, o, 3).stride(s).padding(1).bias(true));
  };
  conv1 = register_module("conv1", conv3x3(in, out, stride));
  if (with_mfa) mfa1 = register_module("mfa1", MFA(out));
  bn1 = register_module("bn1", make_batchnorm(out, bn_momentum));
  conv2 = register_module("conv2", conv3x3(out, out, 1));
  if (with_mfa) mfa2 = register_module("mfa2", MFA(out));
  bn2 = register_module("bn2", make_batchnorm(out, bn_momentum));
  if (stride != 1 || in != out) shortcut = register_module("shortcut", Shortcut(in, out, stride, bn_momentum));
}

torch::Tensor RRAImpl::forward(const torch::Tensor& x) {
  auto y = conv1(x);
  if (mfa1) y = mfa1(y);
  y = torch::relu(bn1(y));
  y = conv2(y);
  if (mfa2) y = mfa2(y);
  y = bn2(y);
  return torch::relu(y + (shortcut ? shortcut(x) : x));
}

}  // namespace drifa
