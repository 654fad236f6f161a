#include "drifa/model/mifa.h"

#include <torch/torch.h>

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

torch::Tensor MIFAImpl::mgifa(const std::vector<torch::Tensor>& xs) {
  torch::Tensor p_min, p_avg, p_max;
  for (const auto& x : xs) {
    auto st = spatial_stats(x);
    p_min = p_min.defined() ? p_min + st.min : st.min;
    p_avg = p_avg.defined() ? p_avg + st.mean : st.mean;
    p_max = p_max.defined() ? p_max + st.max : st.max;
  }
  // One fc shared by the three pooled descriptors: run it once on the stacked batch.
  const auto b = p_min.size(0);
  auto s = torch::sigmoid(fc(torch::cat({p_min, p_avg, p_max}, 0)));
  auto g = s.narrow(0, 0, b) + s.narrow(0, b, b) + s.narrow(0, 2 * b, b);
  return g.unsqueeze(-1).unsqueeze(-1);
}

torch::Tensor MIFAImpl::mlifa(const std::vector<torch::Tensor>& xs) {
  torch::Tensor l;
  for (size_t m = 0; m < xs.size(); ++m) {
    auto q = torch::sigmoid(local[m]->as<torch::nn::Conv2dImpl>()->forward(xs[m]));
    auto st = spatial_stats(q);
    auto t = st.min + st.mean + st.max;
    l = l.defined() ? l + t : t;
  }
  return l.unsqueeze(-1).unsqueeze(-1);
}

std::vector<torch::Tensor> MIFAImpl::forward(const std::vector<torch::Tensor>& xs) {
  TORCH_CHECK(static_cast<int64_t>(xs.size()) == modalities_, "MIFA expects ", modalities_,
              " modalities, got ", xs.size());
  auto att = torch::sigmoid(global_scale * mgifa(xs) + local_scale.view({1, -1, 1, 1}) * mlifa(xs));
  std::vector<torch::Tensor> out;
  out.reserve(xs.size());
  for (size_t m = 0; m < xs.size(); ++m)
    out.push_back(xs[m] * (att * alpha[std::to_string(m)].view({1, -1, 1, 1})));
  return out;
}

}  // namespace drifa
