#pragma once
// RRA: robust residual attention block = ResNet basic block with an MFA after each conv
// (spec section 4):  y = ReLU(BN1(MFA1(conv1 x))); y = BN2(MFA2(conv2 y)); out = ReLU(y + shortcut x)
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include "drifa/model/mfa.h"

namespace drifa {

// BatchNorm as the authors' Keras default: eps 1e-3, running-stat momentum 0.01.
torch::nn::BatchNorm2d make_batchnorm(int64_t channels, double momentum = 0.01);

// Projection shortcut: BN(conv1x1 stride s (x)), named shortcut.conv / shortcut.bn.
class ShortcutImpl : public torch::nn::Module {
 public:
  ShortcutImpl(int64_t in_channels, int64_t out_channels, int64_t stride, double bn_momentum = 0.01);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
};
TORCH_MODULE(Shortcut);

class RRAImpl : public torch::nn::Module {
 public:
  // with_mfa = false gives the plain ResNet basic block (ablation "none"/"mifa").
  RRAImpl(int64_t in_channels, int64_t out_channels, int64_t stride, bool with_mfa, double bn_momentum = 0.01);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  MFA mfa1{nullptr}, mfa2{nullptr};  // null without MFA
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  Shortcut shortcut{nullptr};        // null for identity
};
TORCH_MODULE(RRA);

}  // namespace drifa
