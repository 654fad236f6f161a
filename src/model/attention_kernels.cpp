#include "drifa/model/attention_kernels.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

namespace drifa {

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// ---- shared pieces ----------------------------------------------------------------------------
//
// Samples go through in chunks of k, laid out channel-major: a chunk is [C, k * n], row c holding
// channel c of each of its k samples one after the other (segment j = sample b0 + j). A 1x1
// convolution of a chunk is one GEMM [C, C] x [C, k * n]; k is chosen so the GEMM has enough
// columns to run at speed (large maps: k = 1, the sample's own memory, no copy; small maps:
// many samples per GEMM, so the weights are read once per chunk, not once per sample).

int64_t chunk_samples(int64_t batch, int64_t n) { return std::min<int64_t>(batch, std::max<int64_t>(1, 1024 / n)); }
int64_t chunk_count(int64_t batch, int64_t kmax) { return (batch + kmax - 1) / kmax; }

// x[b0 : b0 + k] as a chunk [C, k * n] (a view when k = 1, else a transposed copy)
Tensor gather_chunk(const Tensor& x, int64_t b0, int64_t k) {
  const int64_t c = x.size(1), n = x.size(2) * x.size(3);
  auto part = x.narrow(0, b0, k).view({k, c, n});
  return k == 1 ? part[0] : part.transpose(0, 1).reshape({c, k * n});
}

// Writes a chunk [C, k * n] back into x-shaped out[b0 : b0 + k].
void scatter_chunk(Tensor& out, const Tensor& chunk, int64_t b0, int64_t k) {
  const int64_t c = out.size(1), n = out.size(2) * out.size(3);
  out.narrow(0, b0, k).view({k, c, n}).copy_(chunk.view({c, k, n}).transpose(0, 1));
}

// Row reductions with eight independent partial results, so they are not one long add chain,
// accumulated in double for float maps: a 64x64 map's mean summed in float drifted up to 3e-5
// from ATen's (pairwise) mean on one machine, past the 1e-5 the kernels are held to.
template <typename T>
T seg_sum(const T* p, int64_t n) {
  using A = std::conditional_t<std::is_same_v<T, float>, double, T>;
  A s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += p[i + k];
  for (; i < n; ++i) s[0] += p[i];
  return static_cast<T>(((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])));
}

template <typename T, bool Max>
T seg_extreme(const T* p, int64_t n) {
  T m[8];
  for (int k = 0; k < 8; ++k) m[k] = p[0];
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) m[k] = Max ? (p[i + k] > m[k] ? p[i + k] : m[k]) : (p[i + k] < m[k] ? p[i + k] : m[k]);
  for (; i < n; ++i) m[0] = Max ? (p[i] > m[0] ? p[i] : m[0]) : (p[i] < m[0] ? p[i] : m[0]);
  T r = m[0];
  for (int k = 1; k < 8; ++k) r = Max ? (m[k] > r ? m[k] : r) : (m[k] < r ? m[k] : r);
  return r;
}

// The share of a pooled extreme's gradient g that each of its ties receives (ATen's convention).
template <typename T>
T tie_share(const T* p, int64_t n, T v, T g) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) c += p[i] == v;
  return c ? g / static_cast<T>(c) : T(0);
}

// f(r) for every row r of a [rows, len] block; rows are split over threads only when each
// thread gets enough elements to pay for the hand-off.
template <class F>
void over_rows(int64_t rows, int64_t len, const F& f) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(len, 1));
  at::parallel_for(0, rows, grain, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) f(r);
  });
}

// f(c0, c1) for ranges of chunk indices (chunk i: samples i*kmax .. min(B, (i+1)*kmax) - 1), the
// ranges spread over ATen's threads. Inside a range everything runs on its thread: the GEMMs (on
// OpenBLAS, one thread since configure_threads) and the elementwise passes (ATen runs nested
// parallel_for inline), so no two thread pools spin against each other. With a single chunk the
// range runs on the calling thread and the passes inside parallelise instead.
template <class F>
void over_chunks(int64_t batch, int64_t kmax, const F& f) {
  const int64_t chunks = chunk_count(batch, kmax);
  if (chunks == 1) {  // parallel_for would mark even one range a parallel region
    f(0, 1);
    return;
  }
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    torch::NoGradGuard no_grad;  // grad mode is thread-local; these ops are never recorded
    f(c0, c1);
  });
}

// out = w @ x + bias (bias per row); out is a contiguous [rows, len] buffer.
inline void affine(Tensor& out, const Tensor& w, const Tensor& x, const Tensor& bias) {
  at::addmm_out(out, bias.view({-1, 1}).expand({w.size(0), x.size(1)}), w, x);
}
inline void gemm(Tensor out, const Tensor& a, const Tensor& b) { at::mm_out(out, a, b); }

// Per-sample pooled output o ([B, C]): element (b0 + j, r), or its gradient (null if none).
template <typename T>
T* pool_at(const Tensor& o, int64_t b, int64_t c, int64_t r) {
  return o.data_ptr<T>() + b * c + r;
}
template <typename T>
const T* grad_rows(const Tensor& g) {
  return g.defined() ? g.data_ptr<T>() : nullptr;
}

Tensor as_matrix(const Tensor& w) { return w.reshape({w.size(0), w.size(1)}).contiguous(); }

// ---- MFA: HIFA's chain and CLIA's first convolution, a chunk at a time -------------------------

// The weights as GEMM operands: conv1 and clia.conv1 read the same x, so they are one [2C, C] GEMM.
struct MFAMats {
  Tensor wst, bst, w2, b2, w3, b3, w4, b4;
  explicit MFAMats(const MFAWeights& w)
      : wst(torch::cat({as_matrix(w.w1), as_matrix(w.wc)}, 0)), bst(torch::cat({w.b1, w.bc}, 0).contiguous()),
        w2(as_matrix(w.w2)), b2(w.b2.contiguous()), w3(as_matrix(w.w3)), b3(w.b3.contiguous()), w4(as_matrix(w.w4)),
        b4(w.b4.contiguous()) {}
};

// One chunk's intermediates; allocated once per call and reused for every chunk.
struct MFAScratch {
  Tensor ac;             // [2C, L]: a1 (rows < C), c1 (rows >= C)
  Tensor a1, a2, s, a3, z4;  // [C, L]; a1 is ac's first half
  MFAScratch(int64_t c, int64_t len, const torch::TensorOptions& o)
      : ac(torch::empty({2 * c, len}, o)), a2(torch::empty({c, len}, o)), s(torch::empty({c, len}, o)),
        a3(torch::empty({c, len}, o)), z4(torch::empty({c, len}, o)) {
    a1 = ac.narrow(0, 0, c);
  }
};

// The five pools, [B, C] each: mean_a1, max_a2, mean_a3, max_z4, mean_c1.
using Pools = std::vector<Tensor>;

// The forward chain for chunk X [C, k * n] of samples b0..b0+k-1; writes their pools.
template <typename T>
void mfa_chain(const Tensor& X, int64_t b0, int64_t k, int64_t n, const MFAMats& m, MFAScratch& s, Pools& pools) {
  const int64_t c = X.size(0), len = k * n;
  const T inv_n = T(1) / static_cast<T>(n);
  affine(s.ac, m.wst, X, m.bst);
  at::sigmoid_(s.ac);
  const T* ac = s.ac.data_ptr<T>();
  over_rows(2 * c, len, [&](int64_t r) {
    for (int64_t j = 0; j < k; ++j)
      *(r < c ? pool_at<T>(pools[0], b0 + j, c, r) : pool_at<T>(pools[4], b0 + j, c, r - c)) =
          seg_sum(ac + r * len + j * n, n) * inv_n;
  });
  affine(s.a2, m.w2, s.a1, m.b2);
  at::sigmoid_(s.a2);
  at::add_out(s.s, s.a1, s.a2);
  const T* a2 = s.a2.data_ptr<T>();
  over_rows(c, len, [&](int64_t r) {
    for (int64_t j = 0; j < k; ++j) *pool_at<T>(pools[1], b0 + j, c, r) = seg_extreme<T, true>(a2 + r * len + j * n, n);
  });
  affine(s.a3, m.w3, s.s, m.b3);
  at::sigmoid_(s.a3);
  const T* a3 = s.a3.data_ptr<T>();
  over_rows(c, len, [&](int64_t r) {
    for (int64_t j = 0; j < k; ++j) *pool_at<T>(pools[2], b0 + j, c, r) = seg_sum(a3 + r * len + j * n, n) * inv_n;
  });
  affine(s.z4, m.w4, s.a3, m.b4);
  const T* z4 = s.z4.data_ptr<T>();
  over_rows(c, len, [&](int64_t r) {
    for (int64_t j = 0; j < k; ++j) *pool_at<T>(pools[3], b0 + j, c, r) = seg_extreme<T, true>(z4 + r * len + j * n, n);
  });
}

struct MFAGrads {
  Tensor wst, bst, w2, b2, w3, b3, w4, b4, x;
};

// Backward for all samples: recompute each chunk's chain, then walk it back (comments give the
// gradient each step computes; d<name> is the loss's gradient with respect to <name>).
template <typename T>
void mfa_backward(const Tensor& x, const MFAMats& m, const variable_list& g, bool want_x, bool want_w, MFAGrads& out) {
  const int64_t B = x.size(0), c = x.size(1), n = x.size(2) * x.size(3);
  const int64_t kmax = chunk_samples(B, n), chunks = chunk_count(B, kmax);
  const T inv_n = T(1) / static_cast<T>(n);
  Pools pools;
  for (int q = 0; q < 5; ++q) pools.push_back(torch::empty({B, c}, x.options()));
  if (want_x) out.x = torch::empty_like(x);
  auto zero_weights = [&](MFAGrads& d) {
    d.wst = torch::zeros_like(m.wst), d.bst = torch::zeros_like(m.bst);
    d.w2 = torch::zeros_like(m.w2), d.b2 = torch::zeros_like(m.b2);
    d.w3 = torch::zeros_like(m.w3), d.b3 = torch::zeros_like(m.b3);
    d.w4 = torch::zeros_like(m.w4), d.b4 = torch::zeros_like(m.b4);
  };
  // Each range of chunks sums its own weight gradients (parts[first chunk of the range]); they
  // are added up in chunk order afterwards, so the result does not depend on thread timing.
  std::vector<MFAGrads> parts(chunks);
  const T *g1 = grad_rows<T>(g[0]), *g2 = grad_rows<T>(g[1]), *g3 = grad_rows<T>(g[2]), *g4 = grad_rows<T>(g[3]),
          *gc = grad_rows<T>(g[4]);
  const T* w4 = m.w4.data_ptr<T>();
  struct Tie {
    int64_t row, at;
    T share;
  };
  over_chunks(B, kmax, [&](int64_t c0, int64_t c1) {
    MFAGrads& part = parts[c0];
    if (want_w) zero_weights(part);
    MFAScratch full(c, kmax * n, x.options());
    std::vector<Tie> ties;
    for (int64_t ci = c0; ci < c1; ++ci) {
      const int64_t b0 = ci * kmax, k = std::min(kmax, B - b0), len = k * n;
      MFAScratch s = k == kmax ? full : MFAScratch(c, len, x.options());
      const Tensor X = gather_chunk(x, b0, k);
      mfa_chain<T>(X, b0, k, n, m, s, pools);
      T *ac = s.ac.data_ptr<T>(), *a2 = s.a2.data_ptr<T>(), *a3 = s.a3.data_ptr<T>(), *z4 = s.z4.data_ptr<T>();
      const T *x2 = pools[1].data_ptr<T>(), *x4 = pools[3].data_ptr<T>();
      auto at = [&](int64_t j, int64_t r) { return (b0 + j) * c + r; };  // index into [B, C]
      // dz4: max_z4's gradient shared by the ties of each maximum (a handful of entries)
      ties.clear();
      if (g4)
        for (int64_t r = 0; r < c; ++r)
          for (int64_t j = 0; j < k; ++j) {
            const T gv = g4[at(j, r)], top = x4[at(j, r)];
            if (gv == T(0)) continue;
            const T* p = z4 + r * len + j * n;
            const T share = tie_share(p, n, top, gv);
            for (int64_t i = 0; i < n; ++i)
              if (p[i] == top) ties.push_back({r, j * n + i, share});
          }
      // da3 = mean_a3's gradient spread + w4^T dz4, into z4's buffer; dw4 = dz4 a3^T, db4 = sum dz4
      T* da3 = z4;
      over_rows(c, len, [&](int64_t r) {
        for (int64_t j = 0; j < k; ++j)
          std::fill(da3 + r * len + j * n, da3 + r * len + (j + 1) * n, g3 ? g3[at(j, r)] * inv_n : T(0));
      });
      for (const auto& t : ties)
        for (int64_t q = 0; q < c; ++q) da3[q * len + t.at] += w4[t.row * c + q] * t.share;
      if (want_w) {
        T *dw4 = part.w4.data_ptr<T>(), *db4 = part.b4.data_ptr<T>();
        for (const auto& t : ties) {
          for (int64_t q = 0; q < c; ++q) dw4[t.row * c + q] += t.share * a3[q * len + t.at];
          db4[t.row] += t.share;
        }
      }
      // dz3 = da3 * a3 (1 - a3), in place
      over_rows(c, len, [&](int64_t r) {
        T* d = da3 + r * len;
        const T* a = a3 + r * len;
        for (int64_t i = 0; i < len; ++i) d[i] *= a[i] * (T(1) - a[i]);
      });
      const Tensor& dz3 = s.z4;
      if (want_w) {
        part.w3.addmm_(dz3, s.s.t());
        part.b3.add_(dz3.sum(1));
      }
      // ds = w3^T dz3 (the gradient reaching both a1 and a2), into s's buffer
      gemm(s.s, m.w3.t(), dz3);
      const T* ds = s.s.data_ptr<T>();
      // dz2 = (ds + max_a2's gradient at the ties of each maximum) * a2 (1 - a2), in place
      over_rows(c, len, [&](int64_t r) {
        for (int64_t j = 0; j < k; ++j) {
          T* p = a2 + r * len + j * n;
          const T* d = ds + r * len + j * n;
          const T top = x2[at(j, r)];
          const T share = g2 && g2[at(j, r)] != T(0) ? tie_share(p, n, top, g2[at(j, r)]) : T(0);
          for (int64_t i = 0; i < n; ++i) {
            const T a = p[i];
            p[i] = (d[i] + (a == top ? share : T(0))) * a * (T(1) - a);
          }
        }
      });
      const Tensor& dz2 = s.a2;
      if (want_w) {
        part.w2.addmm_(dz2, s.a1.t());
        part.b2.add_(dz2.sum(1));
      }
      // da1 = mean_a1's gradient spread + ds + w2^T dz2 (the last into a3's buffer), then
      // dz1 = da1 * a1 (1 - a1) and dzc = mean_c1's gradient spread * c1 (1 - c1), in place
      gemm(s.a3, m.w2.t(), dz2);
      const T* back2 = a3;
      over_rows(2 * c, len, [&](int64_t r) {
        for (int64_t j = 0; j < k; ++j) {
          T* p = ac + r * len + j * n;
          if (r < c) {
            const T spread = g1 ? g1[at(j, r)] * inv_n : T(0);
            const T *d = ds + r * len + j * n, *e = back2 + r * len + j * n;
            for (int64_t i = 0; i < n; ++i) p[i] = (spread + d[i] + e[i]) * p[i] * (T(1) - p[i]);
          } else {
            const T spread = gc ? gc[at(j, r - c)] * inv_n : T(0);
            for (int64_t i = 0; i < n; ++i) p[i] = spread * p[i] * (T(1) - p[i]);
          }
        }
      });
      if (want_w) {
        part.wst.addmm_(s.ac, X.t());
        part.bst.add_(s.ac.sum(1));
      }
      // dx = [w1; wc]^T [dz1; dzc]
      if (want_x) {
        if (k == 1) {
          gemm(out.x.view({B, c, n})[b0], m.wst.t(), s.ac);
        } else {
          gemm(s.s, m.wst.t(), s.ac);  // ds is spent: its buffer takes the chunk's dx
          scatter_chunk(out.x, s.s, b0, k);
        }
      }
    }
  });
  if (want_w) {
    zero_weights(out);
    for (const auto& d : parts) {
      if (!d.wst.defined()) continue;
      out.wst.add_(d.wst), out.bst.add_(d.bst), out.w2.add_(d.w2), out.b2.add_(d.b2);
      out.w3.add_(d.w3), out.b3.add_(d.b3), out.w4.add_(d.w4), out.b4.add_(d.b4);
    }
  }
}

struct FusedMFA : public torch::autograd::Function<FusedMFA> {
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& w1, const Tensor& b1,
                               const Tensor& w2, const Tensor& b2, const Tensor& w3, const Tensor& b3, const Tensor& w4,
                               const Tensor& b4, const Tensor& wc, const Tensor& bc) {
    const MFAMats m(MFAWeights{w1, b1, w2, b2, w3, b3, w4, b4, wc, bc});
    const int64_t B = x.size(0), c = x.size(1), n = x.size(2) * x.size(3), kmax = chunk_samples(B, n);
    Pools pools;
    for (int q = 0; q < 5; ++q) pools.push_back(torch::empty({B, c}, x.options()));
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_mfa_forward", [&] {
      over_chunks(B, kmax, [&](int64_t c0, int64_t c1) {
        MFAScratch full(c, kmax * n, x.options());
        for (int64_t ci = c0; ci < c1; ++ci) {
          const int64_t b0 = ci * kmax, k = std::min(kmax, B - b0);
          MFAScratch s = k == kmax ? full : MFAScratch(c, k * n, x.options());
          mfa_chain<scalar_t>(gather_chunk(x, b0, k), b0, k, n, m, s, pools);
        }
      });
    });
    ctx->save_for_backward({x, w1, b1, w2, b2, w3, b3, w4, b4, wc, bc});
    ctx->set_materialize_grads(false);  // a pool nobody uses costs nothing backward
    return pools;
  }

  static variable_list backward(AutogradContext* ctx, variable_list g) {
    const auto v = ctx->get_saved_variables();
    const Tensor& x = v[0];
    const int64_t c = x.size(1);
    for (auto& t : g)
      if (t.defined()) t = t.contiguous();
    const MFAMats m(MFAWeights{v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10]});
    bool want_w = false;
    for (size_t i = 1; i < 11; ++i) want_w = want_w || ctx->needs_input_grad(i);
    MFAGrads d;
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_mfa_backward",
                               [&] { mfa_backward<scalar_t>(x, m, g, ctx->needs_input_grad(0), want_w, d); });
    if (!want_w) return {d.x, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}};
    auto as_conv = [&](const Tensor& t, const Tensor& like) { return t.reshape(like.sizes()); };
    return {d.x,
            as_conv(d.wst.narrow(0, 0, c), v[1]), d.bst.narrow(0, 0, c),
            as_conv(d.w2, v[3]), d.b2,
            as_conv(d.w3, v[5]), d.b3,
            as_conv(d.w4, v[7]), d.b4,
            as_conv(d.wst.narrow(0, c, c), v[9]), d.bst.narrow(0, c, c)};
  }
};

// ---- MIFA's local branch: q = sigmoid(conv x), pooled by min, mean and max ---------------------

template <typename T>
void local_chain(const Tensor& X, int64_t b0, int64_t k, int64_t n, const Tensor& w, const Tensor& bias, Tensor& q,
                 Pools& pools) {
  const int64_t c = X.size(0), len = k * n;
  affine(q, w, X, bias);
  at::sigmoid_(q);
  const T* p0 = q.data_ptr<T>();
  over_rows(c, len, [&](int64_t r) {
    for (int64_t j = 0; j < k; ++j) {
      const T* p = p0 + r * len + j * n;
      *pool_at<T>(pools[0], b0 + j, c, r) = seg_extreme<T, false>(p, n);
      *pool_at<T>(pools[1], b0 + j, c, r) = seg_sum(p, n) / static_cast<T>(n);
      *pool_at<T>(pools[2], b0 + j, c, r) = seg_extreme<T, true>(p, n);
    }
  });
}

struct FusedLocal : public torch::autograd::Function<FusedLocal> {
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& weight, const Tensor& bias) {
    const int64_t B = x.size(0), c = x.size(1), n = x.size(2) * x.size(3), kmax = chunk_samples(B, n);
    Pools pools;
    for (int q = 0; q < 3; ++q) pools.push_back(torch::empty({B, c}, x.options()));
    const Tensor w = as_matrix(weight), bc = bias.contiguous();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_local_forward", [&] {
      over_chunks(B, kmax, [&](int64_t c0, int64_t c1) {
        Tensor full = torch::empty({c, kmax * n}, x.options());
        for (int64_t ci = c0; ci < c1; ++ci) {
          const int64_t b0 = ci * kmax, k = std::min(kmax, B - b0);
          Tensor q = k == kmax ? full : torch::empty({c, k * n}, x.options());
          local_chain<scalar_t>(gather_chunk(x, b0, k), b0, k, n, w, bc, q, pools);
        }
      });
    });
    ctx->save_for_backward({x, weight, bias});
    ctx->set_materialize_grads(false);
    return pools;
  }

  static variable_list backward(AutogradContext* ctx, variable_list g) {
    const auto v = ctx->get_saved_variables();
    const Tensor& x = v[0];
    const int64_t B = x.size(0), c = x.size(1), n = x.size(2) * x.size(3), kmax = chunk_samples(B, n);
    for (auto& t : g)
      if (t.defined()) t = t.contiguous();
    const Tensor w = as_matrix(v[1]), bc = v[2].contiguous();
    const bool want_x = ctx->needs_input_grad(0), want_w = ctx->needs_input_grad(1) || ctx->needs_input_grad(2);
    Tensor gx = want_x ? torch::empty_like(x) : Tensor(), gw = want_w ? torch::zeros_like(w) : Tensor(),
           gb = want_w ? torch::zeros_like(bc) : Tensor();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_local_backward", [&] {
      using T = scalar_t;
      Pools pools;
      for (int q = 0; q < 3; ++q) pools.push_back(torch::empty({B, c}, x.options()));
      const T *gmin = grad_rows<T>(g[0]), *gmean = grad_rows<T>(g[1]), *gmax = grad_rows<T>(g[2]);
      const int64_t chunks = chunk_count(B, kmax);
      std::vector<Tensor> gws(chunks), gbs(chunks);  // per range of chunks, summed in order below
      over_chunks(B, kmax, [&](int64_t c0, int64_t c1) {
        Tensor full = torch::empty({c, kmax * n}, x.options()), dx_full;
        Tensor& gw_part = gws[c0];
        Tensor& gb_part = gbs[c0];
        if (want_w) gw_part = torch::zeros_like(w), gb_part = torch::zeros_like(bc);
        for (int64_t ci = c0; ci < c1; ++ci) {
          const int64_t b0 = ci * kmax, k = std::min(kmax, B - b0), len = k * n;
          Tensor q = k == kmax ? full : torch::empty({c, len}, x.options());
          const Tensor X = gather_chunk(x, b0, k);
          local_chain<T>(X, b0, k, n, w, bc, q, pools);
          const T *mn = pools[0].data_ptr<T>(), *mx = pools[2].data_ptr<T>();
          // dz = (min's and max's gradients at their ties + mean's spread) * q (1 - q), in place
          T* p0 = q.data_ptr<T>();
          over_rows(c, len, [&](int64_t r) {
            for (int64_t j = 0; j < k; ++j) {
              const int64_t o = (b0 + j) * c + r;
              T* p = p0 + r * len + j * n;
              const T lo = mn[o], hi = mx[o];
              const T at_lo = gmin && gmin[o] != T(0) ? tie_share(p, n, lo, gmin[o]) : T(0);
              const T at_hi = gmax && gmax[o] != T(0) ? tie_share(p, n, hi, gmax[o]) : T(0);
              const T spread = gmean ? gmean[o] / static_cast<T>(n) : T(0);
              for (int64_t i = 0; i < n; ++i) {
                const T a = p[i];
                p[i] = (spread + (a == lo ? at_lo : T(0)) + (a == hi ? at_hi : T(0))) * a * (T(1) - a);
              }
            }
          });
          if (want_w) {
            gw_part.addmm_(q, X.t());
            gb_part.add_(q.sum(1));
          }
          if (want_x) {
            if (k == 1) {
              gemm(gx.view({B, c, n})[b0], w.t(), q);
            } else {
              if (!dx_full.defined() || dx_full.size(1) != len) dx_full = torch::empty({c, len}, x.options());
              gemm(dx_full, w.t(), q);
              scatter_chunk(gx, dx_full, b0, k);
            }
          }
        }
      });
      if (want_w)
        for (int64_t i = 0; i < chunks; ++i)
          if (gws[i].defined()) gw.add_(gws[i]), gb.add_(gbs[i]);
    });
    return {gx, want_w ? gw.reshape(v[1].sizes()) : Tensor(), gb};
  }
};

}  // namespace

namespace {
std::atomic<bool> g_kernels{false};
}  // namespace

void set_attention_kernels(bool on) { g_kernels = on; }
bool attention_kernels() { return g_kernels; }

bool kernels_apply(const torch::Tensor& x) {
  return x.device().is_cpu() && (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kFloat64) &&
         x.dim() == 4 && x.is_contiguous() && x.size(0) > 0 && x.size(2) * x.size(3) > 0;
}

MFAPools fused_mfa_pools(const torch::Tensor& x, const MFAWeights& w) {
  TORCH_CHECK(kernels_apply(x), "fused_mfa_pools: needs a contiguous float CPU tensor [B, C, H, W]");
  auto r = FusedMFA::apply(x, w.w1, w.b1, w.w2, w.b2, w.w3, w.b3, w.w4, w.b4, w.wc, w.bc);
  return {r[0], r[1], r[2], r[3], r[4]};
}

LocalPools fused_local_pools(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  TORCH_CHECK(kernels_apply(x), "fused_local_pools: needs a contiguous float CPU tensor [B, C, H, W]");
  auto r = FusedLocal::apply(x, weight, bias);
  return {r[0], r[1], r[2]};
}

}  // namespace drifa
