#include "drifa/model/spatial_stats.h"

#include <algorithm>
#include <atomic>

#include <ATen/Parallel.h>
#include <torch/torch.h>

namespace drifa {

namespace {

std::atomic<bool> g_fused{true};

bool kernel_applies(const torch::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.dim() == 4 && x.is_contiguous() &&
         x.size(2) * x.size(3) > 0;
}

// One plane of n floats: its minimum, maximum and sum. Four independent accumulators keep the
// loop from waiting on one add chain; NaN reaches the sum (and so the loss) as in ATen.
inline void plane_forward(const float* p, int64_t n, float& mn, float& mx, float& sum) {
  float lo[4], hi[4], s[4];
  for (int k = 0; k < 4; ++k) lo[k] = hi[k] = p[0], s[k] = 0.f;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; ++k) {
      const float v = p[i + k];
      lo[k] = v < lo[k] ? v : lo[k];
      hi[k] = v > hi[k] ? v : hi[k];
      s[k] += v;
    }
  for (; i < n; ++i) {
    lo[0] = p[i] < lo[0] ? p[i] : lo[0];
    hi[0] = p[i] > hi[0] ? p[i] : hi[0];
    s[0] += p[i];
  }
  mn = std::min(std::min(lo[0], lo[1]), std::min(lo[2], lo[3]));
  mx = std::max(std::max(hi[0], hi[1]), std::max(hi[2], hi[3]));
  sum = (s[0] + s[1]) + (s[2] + s[3]);
}

SpatialStats forward_kernel(const torch::Tensor& x) {
  const int64_t planes = x.size(0) * x.size(1), n = x.size(2) * x.size(3);
  auto opts = x.options();
  auto mn = torch::empty({x.size(0), x.size(1)}, opts), mean = torch::empty_like(mn), mx = torch::empty_like(mn);
  const float* px = x.data_ptr<float>();
  float *pmn = mn.data_ptr<float>(), *pmean = mean.data_ptr<float>(), *pmx = mx.data_ptr<float>();
  at::parallel_for(0, planes, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      float s;
      plane_forward(px + k * n, n, pmn[k], pmx[k], s);
      pmean[k] = s / static_cast<float>(n);
    }
  });
  return {mn, mean, mx};
}

// d/dx of (min, mean, max): the min's and max's gradients shared by their ties, the mean's spread.
torch::Tensor backward_kernel(const torch::Tensor& x, const torch::Tensor& mn, const torch::Tensor& mx,
                              const torch::Tensor& gmin, const torch::Tensor& gmean, const torch::Tensor& gmax) {
  const int64_t planes = x.size(0) * x.size(1), n = x.size(2) * x.size(3);
  auto gx = torch::empty_like(x);
  auto c = [](const torch::Tensor& t) { return t.defined() ? t.contiguous() : t; };
  auto gmin_c = c(gmin), gmean_c = c(gmean), gmax_c = c(gmax);
  const float* px = x.data_ptr<float>();
  const float *pmn = mn.data_ptr<float>(), *pmx = mx.data_ptr<float>();
  const float* pgmin = gmin_c.defined() ? gmin_c.data_ptr<float>() : nullptr;
  const float* pgmean = gmean_c.defined() ? gmean_c.data_ptr<float>() : nullptr;
  const float* pgmax = gmax_c.defined() ? gmax_c.data_ptr<float>() : nullptr;
  float* pg = gx.data_ptr<float>();
  at::parallel_for(0, planes, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      const float* p = px + k * n;
      float* g = pg + k * n;
      const float lo = pmn[k], hi = pmx[k];
      const float spread = pgmean ? pgmean[k] / static_cast<float>(n) : 0.f;
      float at_min = 0.f, at_max = 0.f;
      // Each tied element's share, counting ties only for a statistic that has a gradient
      // (spatial_max: the maximum only). No match (a NaN plane) gives no share.
      auto share = [&](float g, float v) {
        int64_t c = 0;
        for (int64_t i = 0; i < n; ++i) c += p[i] == v;
        return c ? g / static_cast<float>(c) : 0.f;
      };
      if (pgmin) at_min = share(pgmin[k], lo);
      if (pgmax) at_max = share(pgmax[k], hi);
      for (int64_t i = 0; i < n; ++i)
        g[i] = spread + (p[i] == lo ? at_min : 0.f) + (p[i] == hi ? at_max : 0.f);
    }
  });
  return gx;
}

struct FusedStats : public torch::autograd::Function<FusedStats> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    auto s = forward_kernel(x);
    ctx->save_for_backward({x, s.min, s.max});
    ctx->set_materialize_grads(false);  // an unused statistic costs nothing backward
    return {s.min, s.mean, s.max};
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list g) {
    auto saved = ctx->get_saved_variables();
    return {backward_kernel(saved[0], saved[1], saved[2], g[0], g[1], g[2])};
  }
};

}  // namespace

void set_fused_attention(bool on) { g_fused = on; }
bool fused_attention() { return g_fused; }

SpatialStats spatial_stats(const torch::Tensor& x) {
  if (g_fused && kernel_applies(x)) {
    auto r = FusedStats::apply(x);
    return {r[0], r[1], r[2]};
  }
  return {x.amin({2, 3}), x.mean({2, 3}), x.amax({2, 3})};
}

torch::Tensor spatial_max(const torch::Tensor& x) {
  if (g_fused && kernel_applies(x)) return FusedStats::apply(x)[2];
  return x.amax({2, 3});
}

}  // namespace drifa
