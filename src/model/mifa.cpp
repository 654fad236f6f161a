#include "drifa/model/mifa.h"

#include <torch/torch.h>

#include "drifa/model/attention_kernels.h"
#include "drifa/model/pointwise_layout.h"
#include "drifa/model/recompute.h"
#include "drifa/model/spatial_stats.h"

namespace drifa {

MIFAImpl::MIFAImpl(int64_t c, int64_t modalities) : modalities_(modalities) {
  fc = register_module("fc", torch::nn::Linear(c, c));
  local = register_module("local", torch::nn::ModuleList());
  for (int64_t m = 0; m < modalities; ++m)
    local->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(c, c, 1).bias(true)));
  global_scale = register_parameter("global_scale", torch::ones({1}));
  local_scale = register_parameter("local_scale", torch::ones({c}));
  alpha = register_module("alpha", torch::nn::ParameterDict());
  for (int64_t m = 0; m < modalities; ++m) // ParameterDict keeps the tensor's own requires_grad flag, so ask for it explicitly.
    alpha->insert(std::to_string(m), torch::ones({c}).requires_grad_(true));
}

namespace {

// Sample weights of modality m as [B, 1], or undefined when every sample has it.
torch::Tensor weight_of(const torch::Tensor& presence, size_t m) {
  if (!presence.defined()) return {};
  return presence.select(1, static_cast<int64_t>(m)).unsqueeze(1);
}

void accumulate(torch::Tensor& sum, torch::Tensor term, const torch::Tensor& w) {
  if (w.defined()) term = term * w.to(term.scalar_type());
  sum = sum.defined() ? sum + term : term;
}

}  // namespace

torch::Tensor MIFAImpl::mgifa(const std::vector<torch::Tensor>& xs, const torch::Tensor& presence) {
  torch::Tensor p_min, p_avg, p_max;
  for (size_t m = 0; m < xs.size(); ++m) {
    if (!xs[m].defined()) continue;
    auto st = spatial_stats(xs[m]);
    const auto w = weight_of(presence, m);
    accumulate(p_min, st.min, w);
    accumulate(p_avg, st.mean, w);
    accumulate(p_max, st.max, w);
  }
  TORCH_CHECK(p_min.defined(), "MIFA needs at least one present modality");
  // One fc shared by the three pooled descriptors: run it once on the stacked batch.
  const auto b = p_min.size(0);
  auto s = torch::sigmoid(fc(torch::cat({p_min, p_avg, p_max}, 0)));
  auto g = s.narrow(0, 0, b) + s.narrow(0, b, b) + s.narrow(0, 2 * b, b);
  return g.unsqueeze(-1).unsqueeze(-1);
}

torch::Tensor MIFAImpl::mlifa(const std::vector<torch::Tensor>& xs, const torch::Tensor& presence) {
  torch::Tensor l;
  for (size_t m = 0; m < xs.size(); ++m) {
    if (!xs[m].defined()) continue;
    auto* conv = local[m]->as<torch::nn::Conv2dImpl>();
    torch::Tensor pooled;
    if (attention_kernels() && fused_attention() && kernels_apply(xs[m])) {
      // q = sigmoid(conv x) and its three pools in one fused pass (model/attention_kernels.h)
      auto st = fused_local_pools(xs[m], conv->weight, conv->bias);
      pooled = st.min + st.mean + st.max;
    } else {
      const auto pools = [conv](const torch::Tensor& x) {
        auto st = spatial_stats(torch::sigmoid(conv->forward(pointwise_layout(x))));  // pointwise_layout.h
        return std::vector<torch::Tensor>{st.min + st.mean + st.max};
      };
      // recompute.h: keep only xs[m], not its channels-last copy and sigmoid map
      pooled = attention_recompute() && torch::GradMode::is_enabled()
                   ? recomputed(xs[m], {conv->weight, conv->bias}, pools)[0]
                   : pools(xs[m])[0];
    }
    accumulate(l, pooled, weight_of(presence, m));
  }
  TORCH_CHECK(l.defined(), "MIFA needs at least one present modality");
  return l.unsqueeze(-1).unsqueeze(-1);
}

std::vector<torch::Tensor> MIFAImpl::forward(const std::vector<torch::Tensor>& xs, const torch::Tensor& presence) {
  TORCH_CHECK(static_cast<int64_t>(xs.size()) == modalities_, "MIFA expects ", modalities_,
              " modalities, got ", xs.size());
  auto att = torch::sigmoid(global_scale * mgifa(xs, presence) + local_scale.view({1, -1, 1, 1}) * mlifa(xs, presence));
  std::vector<torch::Tensor> out;
  out.reserve(xs.size());
  for (size_t m = 0; m < xs.size(); ++m)
    out.push_back(xs[m].defined() ? xs[m] * (att * alpha[std::to_string(m)].view({1, -1, 1, 1})) : torch::Tensor());
  return out;
}

}  // namespace drifa
