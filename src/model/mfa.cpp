#include "drifa/model/mfa.h"

#include <atomic>

#include <torch/torch.h>

#include "drifa/model/attention_kernels.h"
#include "drifa/model/pointwise_layout.h"
#include "drifa/model/spatial_stats.h"

namespace drifa {

namespace {

std::atomic<bool> g_recompute{false};

// HIFA's two levels and CLIA's pool of x, computed without keeping the maps between them; the
// backward pass recomputes them from x with autograd on and differentiates that. The parameters
// of the five 1x1 convolutions come in as inputs so their gradients flow to them.
struct RecomputedPools : public torch::autograd::Function<RecomputedPools> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, MFAImpl* mfa,
                                                at::TensorList params) {
    ctx->saved_data["mfa"] = reinterpret_cast<int64_t>(mfa);
    ctx->save_for_backward({x});
    return pools(*mfa, x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list g) {
    auto* mfa = reinterpret_cast<MFAImpl*>(ctx->saved_data["mfa"].toInt());
    const auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    const auto params = weights(*mfa);
    torch::autograd::variable_list out, wrt{x}, grads;
    {
      torch::AutoGradMode on(true);
      out = pools(*mfa, x);
    }
    wrt.insert(wrt.end(), params.begin(), params.end());
    torch::autograd::variable_list used_out, used_g;
    for (size_t i = 0; i < out.size(); ++i)
      if (g[i].defined()) used_out.push_back(out[i]), used_g.push_back(g[i]);
    grads = torch::autograd::grad(used_out, wrt, used_g, /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true);
    torch::autograd::variable_list result{grads[0], torch::Tensor()};
    result.insert(result.end(), grads.begin() + 1, grads.end());
    return result;
  }
  static torch::autograd::variable_list pools(MFAImpl& m, const torch::Tensor& x) {
    const auto [s1, s2] = m.hifa->levels(x);
    return {s1, s2, m.clia->pool(x)};
  }
  static std::vector<torch::Tensor> weights(MFAImpl& m) {
    const auto& h = *m.hifa;
    return {h.conv1->weight, h.conv1->bias, h.conv2->weight, h.conv2->bias, h.conv3->weight,
            h.conv3->bias, h.conv4->weight, h.conv4->bias, m.clia->conv1->weight, m.clia->conv1->bias};
  }
};

}  // namespace

void set_attention_recompute(bool on) { g_recompute = on; }
bool attention_recompute() { return g_recompute; }

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
    const auto& h = *hifa;
    auto p = fused_mfa_pools(x, {h.conv1->weight, h.conv1->bias, h.conv2->weight, h.conv2->bias, h.conv3->weight,
                                 h.conv3->bias, h.conv4->weight, h.conv4->bias, clia->conv1->weight, clia->conv1->bias});
    g = hifa->gate(p.mean_a1 + p.max_a2, p.mean_a3 + torch::sigmoid(p.max_z4));
    l = clia->gate(p.mean_c1);
  } else {
    const auto xc = pointwise_layout(x);  // the five 1x1 convolutions in channels-last (pointwise_layout.h)
    if (g_recompute && torch::GradMode::is_enabled()) {
      const auto w = RecomputedPools::weights(*this);
      const auto p = RecomputedPools::apply(xc, this, at::TensorList(w));
      g = hifa->gate(p[0], p[1]);
      l = clia->gate(p[2]);
    } else {
      g = hifa(xc);
      l = clia(xc);
    }
  }
  auto att = torch::sigmoid(global_scale * g + local_scale.view({1, -1, 1, 1}) * l);
  return x * (att * alpha.view({1, -1, 1, 1}));
}

}  // namespace drifa
