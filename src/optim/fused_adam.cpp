#include "drifa/optim/fused_adam.h"

#include <cmath>
#include <memory>
#include <string>
#include <type_traits>

#include <ATen/Parallel.h>

namespace drifa {

namespace {

// The optimiser's state map is keyed by the parameter's TensorImpl: as a string in LibTorch 1.x,
// as the pointer itself in 2.x. Whichever this build has.
template <class Map>
typename Map::key_type state_key(const torch::Tensor& p) {
  if constexpr (std::is_same_v<typename Map::key_type, std::string>)
    return c10::guts::to_string(p.unsafeGetTensorImpl());
  else
    return p.unsafeGetTensorImpl();
}

// One pass over the memory of a tensor visits every element once in any dense layout; the
// parameter, its gradient and its moments then only need the same walk (same_walk below;
// channels-last weights: their gradients and zeros_like moments are channels-last too).
bool fusable_tensor(const torch::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && !t.is_sparse() && t.is_non_overlapping_and_dense();
}

// The same walk over memory: strides agree wherever the size is over 1 (a size-1 dimension's
// stride is arbitrary; autograd gives a [C,1,1,1] weight's gradient other strides there).
bool same_walk(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes()) return false;
  for (int64_t d = 0; d < a.dim(); ++d)
    if (a.size(d) > 1 && a.stride(d) != b.stride(d)) return false;
  return true;
}

// A moment in its parameter's layout (a checkpoint's moments load contiguous).
torch::Tensor like_param(const torch::Tensor& m, const torch::Tensor& p) {
  return same_walk(m, p) ? m : torch::empty_like(p).copy_(m);
}

}  // namespace

torch::optim::AdamParamState* adam_state(torch::optim::Adam& opt, const torch::Tensor& p) {
  auto& map = opt.state();
  auto it = map.find(state_key<std::decay_t<decltype(map)>>(p));
  return it == map.end() ? nullptr : static_cast<torch::optim::AdamParamState*>(it->second.get());
}

FusedAdam::FusedAdam(std::vector<torch::Tensor> params, torch::optim::AdamOptions options)
    : torch::optim::Adam(std::move(params), std::move(options)) {}

bool FusedAdam::fusable() const {
  for (const auto& group : param_groups_) {
    if (static_cast<const torch::optim::AdamOptions&>(group.options()).amsgrad()) return false;
    for (const auto& p : group.params())
      if (p.grad().defined() && !(fusable_tensor(p) && fusable_tensor(p.grad()) && same_walk(p, p.grad()))) return false;
  }
  return true;
}

torch::Tensor FusedAdam::step(LossClosure closure) {
  // The closure first, as Adam calls it: it sets the gradients that decide whether this step fuses.
  torch::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  if (!fusable()) {
    torch::optim::Adam::step();
    return loss;
  }
  torch::NoGradGuard no_grad;
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const torch::optim::AdamOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      torch::optim::AdamParamState* state = adam_state(*this, p);
      if (state == nullptr) {  // as Adam initialises it
        auto fresh = std::make_unique<torch::optim::AdamParamState>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        state = fresh.get();
        state_.emplace(state_key<decltype(state_)>(p), std::move(fresh));
      }
      auto& s = *state;
      s.exp_avg(like_param(s.exp_avg(), p));
      s.exp_avg_sq(like_param(s.exp_avg_sq(), p));
      s.step(s.step() + 1);
      // Adam's scalars, computed in double and applied in float as ATen applies them to float
      // tensors; Tensor / double is a multiplication by the reciprocal there, so it is here.
      const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
      const double bc1 = 1 - std::pow(beta1, double(s.step())), bc2 = 1 - std::pow(beta2, double(s.step()));
      const float b1 = float(beta1), b2 = float(beta2), one_b1 = float(1 - beta1), one_b2 = float(1 - beta2);
      const float wd = float(o.weight_decay()), eps = float(o.eps()), inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
      const float neg_step = float(-(o.lr() / bc1));
      const bool decay = o.weight_decay() != 0;
      float* w = p.data_ptr<float>();
      const float* g = p.grad().data_ptr<float>();
      float* m = s.exp_avg().data_ptr<float>();
      float* v = s.exp_avg_sq().data_ptr<float>();
      at::parallel_for(0, p.numel(), 1 << 15, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const float gi = decay ? g[i] + wd * w[i] : g[i];
          m[i] = m[i] * b1 + one_b1 * gi;
          v[i] = v[i] * b2 + one_b2 * (gi * gi);
          const float denom = std::sqrt(v[i]) * inv_sqrt_bc2 + eps;
          w[i] = w[i] + neg_step * (m[i] / denom);
        }
      });
    }
  }
  return loss;
}

}  // namespace drifa
