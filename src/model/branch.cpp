#include "drifa/model/branch.h"

#include <torch/torch.h>

namespace drifa {

int64_t stage_stride(const std::vector<int64_t>& widths, int64_t i) {
  return (i > 0 && widths[i] != widths[i - 1]) ? 2 : 1;
}

StemImpl::StemImpl(int64_t in_channels, int64_t width, bool with_mfa, double bn_momentum) {
  conv = register_module(
      "conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, width, 7).stride(2).padding(3).bias(true)));
  if (with_mfa) mfa = register_module("mfa", MFA(width));
  bn = register_module("bn", make_batchnorm(width, bn_momentum));
}

torch::Tensor StemImpl::forward(const torch::Tensor& x) {
  auto y = conv(x);
  if (mfa) y = mfa(y);
  y = torch::relu(bn(y));
  return torch::max_pool2d(y, 3, 2, 1);
}

StageImpl::StageImpl(int64_t in, int64_t out, int64_t stride, bool with_mfa, bool post_mfa, double bn_momentum) {
  rra = register_module("rra", RRA(in, out, stride, with_mfa, bn_momentum));
  if (post_mfa) mfa = register_module("mfa", MFA(out));
}

BranchImpl::BranchImpl(const ModelConfig& cfg) {
  const bool with_mfa = has_mfa(cfg.attention);
  stem = register_module("stem", Stem(cfg.in_channels, cfg.widths[0], with_mfa, cfg.bn_momentum));
  auto list = register_module("stages", torch::nn::ModuleList());
  const int64_t n = cfg.stages();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t in = i == 0 ? cfg.widths[0] : cfg.widths[i - 1];
    Stage s(in, cfg.widths[i], stage_stride(cfg.widths, i), with_mfa, with_mfa && i < n - 1, cfg.bn_momentum);
    list->push_back(s);
    stages.push_back(s);
  }
}

}  // namespace drifa
