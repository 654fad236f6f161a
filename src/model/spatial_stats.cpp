#include "drifa/model/spatial_stats.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/torch.h>

namespace drifa {

namespace {

std::atomic<bool> g_fused{true};

// NCHW or channels-last (NHWC in memory): the attention computes its 1x1 convolutions in
// channels-last (mfa.cpp), so its maps arrive in that layout.
bool channels_last(const torch::Tensor& x) {
  return !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

bool kernel_applies(const torch::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.dim() == 4 &&
         (x.is_contiguous() || channels_last(x)) && x.size(2) * x.size(3) > 0;
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

// Channels-last: sample b is n rows of C floats; each row updates C running minima, maxima and
// sums, a loop over contiguous channels the compiler vectorises.
SpatialStats forward_kernel_nhwc(const torch::Tensor& x) {
  const int64_t B = x.size(0), C = x.size(1), n = x.size(2) * x.size(3);
  auto mn = torch::empty({B, C}, x.options()), mean = torch::empty_like(mn), mx = torch::empty_like(mn);
  const float* px = x.data_ptr<float>();
  float *pmn = mn.data_ptr<float>(), *pmean = mean.data_ptr<float>(), *pmx = mx.data_ptr<float>();
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> sum(static_cast<size_t>(C));
    for (int64_t b = b0; b < b1; ++b) {
      const float* p = px + b * n * C;
      float *lo = pmn + b * C, *hi = pmx + b * C;
      std::copy(p, p + C, lo);
      std::copy(p, p + C, hi);
      std::fill(sum.begin(), sum.end(), 0.f);
      for (int64_t i = 0; i < n; ++i) {
        const float* r = p + i * C;
        for (int64_t c = 0; c < C; ++c) {
          lo[c] = r[c] < lo[c] ? r[c] : lo[c];
          hi[c] = r[c] > hi[c] ? r[c] : hi[c];
          sum[static_cast<size_t>(c)] += r[c];
        }
      }
      for (int64_t c = 0; c < C; ++c) pmean[b * C + c] = sum[static_cast<size_t>(c)] / static_cast<float>(n);
    }
  });
  return {mn, mean, mx};
}

SpatialStats forward_kernel(const torch::Tensor& x) {
  if (channels_last(x)) return forward_kernel_nhwc(x);
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

// The same in channels-last: per sample, one pass counts each channel's tied minima and maxima,
// a second writes the gradient row by row.
void backward_kernel_nhwc(const float* px, const float* pmn, const float* pmx, const float* pgmin, const float* pgmean,
                          const float* pgmax, float* pg, int64_t B, int64_t C, int64_t n) {
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    const size_t Cs = static_cast<size_t>(C);
    std::vector<float> at_min(Cs), at_max(Cs), spread(Cs), cmin(Cs), cmax(Cs);
    for (int64_t b = b0; b < b1; ++b) {
      const float* p = px + b * n * C;
      float* g = pg + b * n * C;
      const float *lo = pmn + b * C, *hi = pmx + b * C;
      std::fill(cmin.begin(), cmin.end(), 0.f);
      std::fill(cmax.begin(), cmax.end(), 0.f);
      if (pgmin || pgmax)
        for (int64_t i = 0; i < n; ++i) {
          const float* r = p + i * C;
          for (int64_t c = 0; c < C; ++c) {
            cmin[static_cast<size_t>(c)] += r[c] == lo[c];
            cmax[static_cast<size_t>(c)] += r[c] == hi[c];
          }
        }
      for (int64_t c = 0; c < C; ++c) {
        const size_t k = static_cast<size_t>(c);
        // Each tied element's share; no match (a NaN plane) gives no share.
        at_min[k] = pgmin && cmin[k] > 0 ? pgmin[b * C + c] / cmin[k] : 0.f;
        at_max[k] = pgmax && cmax[k] > 0 ? pgmax[b * C + c] / cmax[k] : 0.f;
        spread[k] = pgmean ? pgmean[b * C + c] / static_cast<float>(n) : 0.f;
      }
      for (int64_t i = 0; i < n; ++i) {
        const float* r = p + i * C;
        float* o = g + i * C;
        for (int64_t c = 0; c < C; ++c) {
          // (every load before the selects, so they are blends and the loop vectorises)
          const size_t k = static_cast<size_t>(c);
          const float v = r[c], a = at_min[k], z = at_max[k];
          o[c] = spread[k] + (v == lo[c] ? a : 0.f) + (v == hi[c] ? z : 0.f);
        }
      }
    }
  });
}

// d/dx of (min, mean, max): the min's and max's gradients shared by their ties, the mean's spread.
torch::Tensor backward_kernel(const torch::Tensor& x, const torch::Tensor& mn, const torch::Tensor& mx,
                              const torch::Tensor& gmin, const torch::Tensor& gmean, const torch::Tensor& gmax) {
  const int64_t planes = x.size(0) * x.size(1), n = x.size(2) * x.size(3);
  auto gx = torch::empty_like(x);  // keeps x's layout
  auto c = [](const torch::Tensor& t) { return t.defined() ? t.contiguous() : t; };
  auto gmin_c = c(gmin), gmean_c = c(gmean), gmax_c = c(gmax);
  const float* px = x.data_ptr<float>();
  const float *pmn = mn.data_ptr<float>(), *pmx = mx.data_ptr<float>();
  const float* pgmin = gmin_c.defined() ? gmin_c.data_ptr<float>() : nullptr;
  const float* pgmean = gmean_c.defined() ? gmean_c.data_ptr<float>() : nullptr;
  const float* pgmax = gmax_c.defined() ? gmax_c.data_ptr<float>() : nullptr;
  float* pg = gx.data_ptr<float>();
  if (channels_last(x)) {
    backward_kernel_nhwc(px, pmn, pmx, pgmin, pgmean, pgmax, pg, x.size(0), x.size(1), n);
    return gx;
  }
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
