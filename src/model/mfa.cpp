#include "drifa/model/mfa.h"

#include <torch/torch.h>

#include "drifa/model/attention_kernels.h"
#include "drifa/model/mfa_chain.h"
#include "drifa/model/pointwise_layout.h"
#include "drifa/model/recompute.h"
#include "drifa/model/spatial_stats.h"

namespace drifa {

namespace {
// The five 1x1 convolutions' weights, as the fused kernels, the chain node and recompute take them.
MFAWeights weights_of(const HIFAImpl& h, const CLIAImpl& c) {
  return {h.conv1->weight, h.conv1->bias, h.conv2->weight, h.conv2->bias, h.conv3->weight,
          h.conv3->bias,   h.conv4->weight, h.conv4->bias, c.conv1->weight, c.conv1->bias};
}
}  // namespace

MFAImpl::MFAImpl(int64_t c) {
  hifa = register_module("hifa", HIFA(c));
  clia = register_module("clia", CLIA(c));
  global_scale = register_parameter("global_scale", torch::ones({1}));
  local_scale = register_parameter("local_scale", torch::ones({c}));
  alpha = register_parameter("alpha", torch::ones({c}));
}

torch::Tensor MFAImpl::forward(const torch::Tensor& x) {
  torch::Tensor g, l;  // [B, C, 1, 1] each
  if (attention_kernels() && fused_attention() && kernels_apply(x)) {
    // HIFA's chain and CLIA's first convolution in one fused pass (model/attention_kernels.h)
    auto p = fused_mfa_pools(x, weights_of(*hifa, *clia));
    g = hifa->gate(p.mean_a1 + p.max_a2, p.mean_a3 + torch::sigmoid(p.max_z4));
    l = clia->gate(p.mean_c1);
  } else {
    // HIFA's two level descriptors and CLIA's l1, each [B, C]: the full-resolution work
    const auto levels = [this](const torch::Tensor& x) {
      if (mfa_chain() && mfa_chain_applies(x)) {  // one autograd node (mfa_chain.h)
        const auto p = mfa_chain(x, weights_of(*hifa, *clia));
        return std::vector<torch::Tensor>{p.mean_a1 + p.max_a2, p.mean_a3 + torch::sigmoid(p.max_z4), p.mean_c1};
      }
      const auto xc = pointwise_layout(x);  // the five 1x1 convolutions in channels-last (pointwise_layout.h)
      const auto [s1, s2] = hifa->levels(xc);
      return std::vector<torch::Tensor>{s1, s2, clia->pool(xc)};
    };
    // recompute.h: only x is kept; the channels-last copy and the seven maps are made again in backward
    const auto w = weights_of(*hifa, *clia);
    const auto p = attention_recompute() && torch::GradMode::is_enabled()
                       ? recomputed(x, {w.w1, w.b1, w.w2, w.b2, w.w3, w.b3, w.w4, w.b4, w.wc, w.bc}, levels)
                       : levels(x);
    g = hifa->gate(p[0], p[1]);
    l = clia->gate(p[2]);
  }
  auto att = torch::sigmoid(global_scale * g + local_scale.view({1, -1, 1, 1}) * l);
  return x * (att * alpha.view({1, -1, 1, 1}));
}

}  // namespace drifa
