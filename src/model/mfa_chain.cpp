#include "drifa/model/mfa_chain.h"

#include <atomic>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "drifa/model/spatial_stats.h"
#include "drifa/runtime/autocast.h"

namespace drifa {

namespace {

std::atomic<bool> g_chain{false};

using torch::Tensor;
constexpr auto kCL = at::MemoryFormat::ChannelsLast;

// (oneDNN returns channels-last for a channels-last input; the passes below read rows of C floats)
Tensor conv(const Tensor& x, const Tensor& w, const Tensor& b) { return torch::conv2d(x, w, b).contiguous(kCL); }

// d(input), d(weight), d(bias) of a 1x1 convolution, oneDNN's backward as autograd would call it.
std::tuple<Tensor, Tensor, Tensor> conv_backward(const Tensor& g, const Tensor& x, const Tensor& w) {
  return at::convolution_backward(g, x, w, at::IntArrayRef{w.size(0)}, {1, 1}, {0, 0}, {1, 1}, false, {0, 0}, 1, {true, true, true});
}

// The maps as rows of C floats (channels-last memory): sample b is rows [b*n, (b+1)*n).
struct Rows {
  int64_t B, C, n;
};

// Where each (sample, channel) plane of a map reaches its maximum: `count` [B, C] tied elements,
// and, while a sample has at most `keep` of them, the elements themselves as i * C + c in row
// order (sample b's are at[start[b] .. start[b + 1]); `all` false once a sample has more).
struct Maxima {
  Tensor at, start, count;  // int64, int64 [B + 1], float [B, C]
  bool all = true;
};

Maxima maxima(const Tensor& map, const Tensor& mx, const Rows& r, int64_t keep) {
  Maxima m;
  m.count = torch::zeros({r.B, r.C}, torch::kFloat32);
  std::vector<std::vector<int64_t>> at(static_cast<size_t>(r.B));
  std::vector<char> over(static_cast<size_t>(r.B), 0);
  const float *p = map.data_ptr<float>(), *hi_all = mx.data_ptr<float>();
  float* count = m.count.data_ptr<float>();
  at::parallel_for(0, r.B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      auto& mine = at[static_cast<size_t>(b)];
      const float* hi = hi_all + b * r.C;
      float* k = count + b * r.C;
      for (int64_t i = 0; i < r.n; ++i) {
        const float* row = p + (b * r.n + i) * r.C;
        // most rows hold no maximum: a branch-free test first (vectorised), the positions after
        int hit = 0;
        for (int64_t c = 0; c < r.C; ++c) hit |= row[c] == hi[c];
        if (!hit) continue;
        for (int64_t c = 0; c < r.C; ++c) {
          if (row[c] != hi[c]) continue;
          k[c] += 1.f;
          if (static_cast<int64_t>(mine.size()) < keep) mine.push_back(i * r.C + c);
          else over[static_cast<size_t>(b)] = 1;
        }
      }
    }
  });
  m.start = torch::empty({r.B + 1}, torch::kInt64);
  int64_t* start = m.start.data_ptr<int64_t>();
  start[0] = 0;
  for (int64_t b = 0; b < r.B; ++b) {
    start[b + 1] = start[b] + static_cast<int64_t>(at[static_cast<size_t>(b)].size());
    m.all = m.all && !over[static_cast<size_t>(b)];
  }
  m.at = torch::empty({start[r.B]}, torch::kInt64);
  for (int64_t b = 0; b < r.B; ++b) std::copy(at[static_cast<size_t>(b)].begin(), at[static_cast<size_t>(b)].end(), m.at.data_ptr<int64_t>() + start[b]);
  return m;
}

// The max's gradient per tied element, g / count (ATen's convention: ties share evenly); 0 where g
// is undefined or a plane has no match (a NaN plane). [B, C]
std::vector<float> shares(const Tensor& count, const Tensor& g, const Rows& r) {
  std::vector<float> share(static_cast<size_t>(r.B * r.C), 0.f);
  if (!g.defined()) return share;
  const auto gc = g.contiguous();
  const float *pg = gc.data_ptr<float>(), *k = count.data_ptr<float>();
  for (int64_t e = 0; e < r.B * r.C; ++e) share[static_cast<size_t>(e)] = k[e] > 0 ? pg[e] / k[e] : 0.f;
  return share;
}

// [B, C] mean gradient spread over the n positions (mean's backward: g / n), zeros if undefined.
std::vector<float> spread(const Tensor& g, const Rows& r) {
  std::vector<float> s(static_cast<size_t>(r.B * r.C), 0.f);
  if (!g.defined()) return s;
  const auto gc = g.contiguous();
  const float* pg = gc.data_ptr<float>();
  for (int64_t k = 0; k < r.B * r.C; ++k) s[static_cast<size_t>(k)] = pg[k] / static_cast<float>(r.n);
  return s;
}

// out = (sum of the inputs' terms) * (1 - y) * y, row by row: per element
//   t = a[i] (+ b[i]) (+ per[b, c]) (+ share[b, c] where map == its max)
// One loop per combination of the terms (each call site has its own): the compiler vectorises
// a loop without branches, and GCC left this one's four tests inside it (about 2x the time of
// a memory-speed pass: 4.4-5.4 ms against 1.9-2.5 for 16 x 4096 x 64 floats, 2-core AVX-512 Xeon).
template <bool A, bool B, bool Per, bool Share>
void sigmoid_grad_rows(float* out, const float* a, const float* b, const float* y, const float* per, const float* map,
                       const float* mx, const float* share, const Rows& r) {
  at::parallel_for(0, r.B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t s = b0; s < b1; ++s) {
      const float* pc = Per ? per + s * r.C : nullptr;
      const float* sh = Share ? share + s * r.C : nullptr;
      const float* hi = Share ? mx + s * r.C : nullptr;
      for (int64_t i = 0; i < r.n; ++i) {
        const int64_t o = (s * r.n + i) * r.C;
        for (int64_t c = 0; c < r.C; ++c) {
          float t = 0.f;
          if (A) t = a[o + c];
          if (B) t += b[o + c];
          if (Per) t += pc[c];
          if (Share) {
            // (loads before the select, so it is a blend, not a branch)
            const float m = map[o + c], h = hi[c], at_max = sh[c];
            t += m == h ? at_max : 0.f;
          }
          const float v = y[o + c];
          out[o + c] = t * (1.f - v) * v;
        }
      }
    }
  });
}

// out may alias a. Any of a, b, per, share may be null (map and mx go with share).
void sigmoid_grad_pass(float* out, const float* a, const float* b, const float* y, const std::vector<float>* per,
                       const float* map, const float* mx, const std::vector<float>* share, const Rows& r) {
  using Loop = void (*)(float*, const float*, const float*, const float*, const float*, const float*, const float*,
                        const float*, const Rows&);
  static constexpr Loop loops[16] = {
      sigmoid_grad_rows<false, false, false, false>, sigmoid_grad_rows<false, false, false, true>,
      sigmoid_grad_rows<false, false, true, false>,  sigmoid_grad_rows<false, false, true, true>,
      sigmoid_grad_rows<false, true, false, false>,  sigmoid_grad_rows<false, true, false, true>,
      sigmoid_grad_rows<false, true, true, false>,   sigmoid_grad_rows<false, true, true, true>,
      sigmoid_grad_rows<true, false, false, false>,  sigmoid_grad_rows<true, false, false, true>,
      sigmoid_grad_rows<true, false, true, false>,   sigmoid_grad_rows<true, false, true, true>,
      sigmoid_grad_rows<true, true, false, false>,   sigmoid_grad_rows<true, true, false, true>,
      sigmoid_grad_rows<true, true, true, false>,    sigmoid_grad_rows<true, true, true, true>};
  const float* pc = per ? per->data() : nullptr;
  const float* sh = share ? share->data() : nullptr;
  loops[(a ? 8 : 0) | (b ? 4 : 0) | (pc ? 2 : 0) | (sh ? 1 : 0)](out, a, b, y, pc, map, mx, sh, r);
}

// z4's gradient: its max's share at the tied maxima, 0 elsewhere.
Tensor max_grad_map(const Tensor& z, const Tensor& mx, const std::vector<float>& share, const Rows& r) {
  auto g = torch::empty_like(z);
  const float *p = z.data_ptr<float>(), *hi = mx.data_ptr<float>();
  float* o = g.data_ptr<float>();
  at::parallel_for(0, r.B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t s = b0; s < b1; ++s)
      for (int64_t i = 0; i < r.n; ++i) {
        const int64_t off = (s * r.n + i) * r.C;
        for (int64_t c = 0; c < r.C; ++c) o[off + c] = p[off + c] == hi[s * r.C + c] ? share[static_cast<size_t>(s * r.C + c)] : 0.f;
      }
  });
  return g;
}

// conv4's backward is sparse while the tied maxima are at most 1/kSparseTies of its map's
// elements: a row added per maximum costs about what 1/kSparseTies of the dense GEMM would.
constexpr int64_t kSparseTies = 16;

// out = (spread[b, c] + sum over the maxima at row i of share[b, k] * w4[k, c]) * (1 - y) * y:
// a3's sigmoid derivative with conv4's sparse input gradient and the mean's spread.
void sigmoid_grad_with_rows(float* out, const float* y, const std::vector<float>& spread, const Maxima& m,
                            const std::vector<float>& share, const float* w4, const Rows& r) {
  const int64_t *at = m.at.data_ptr<int64_t>(), *start = m.start.data_ptr<int64_t>();
  at::parallel_for(0, r.B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> t(static_cast<size_t>(r.C));
    for (int64_t b = b0; b < b1; ++b) {
      const float* per = spread.data() + b * r.C;
      int64_t e = start[b];
      for (int64_t i = 0; i < r.n; ++i) {
        const int64_t o = (b * r.n + i) * r.C;
        if (e < start[b + 1] && at[e] / r.C == i) {
          std::fill(t.begin(), t.end(), 0.f);
          for (; e < start[b + 1] && at[e] / r.C == i; ++e) {
            const int64_t k = at[e] % r.C;
            const float sh = share[static_cast<size_t>(b * r.C + k)];
            for (int64_t c = 0; c < r.C; ++c) t[static_cast<size_t>(c)] += sh * w4[k * r.C + c];
          }
          for (int64_t c = 0; c < r.C; ++c) {
            const float v = y[o + c];
            out[o + c] = (t[static_cast<size_t>(c)] + per[c]) * (1.f - v) * v;
          }
        } else {
          for (int64_t c = 0; c < r.C; ++c) {
            const float v = y[o + c];
            out[o + c] = per[c] * (1.f - v) * v;
          }
        }
      }
    }
  });
}

struct Chain : public torch::autograd::Function<Chain> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const Tensor& x, const Tensor& w1,
                                                const Tensor& b1, const Tensor& w2, const Tensor& b2, const Tensor& w3,
                                                const Tensor& b3, const Tensor& w4, const Tensor& b4, const Tensor& wc,
                                                const Tensor& bc, bool grad) {
    // The plain path's operations (hifa.cpp, clia.cpp) on the same channels-last copy: the same values.
    const auto xc = x.contiguous(kCL);
    auto a1 = conv(xc, w1, b1).sigmoid_();
    auto a2 = conv(a1, w2, b2).sigmoid_();
    auto a3 = conv(a1 + a2, w3, b3).sigmoid_();
    auto z4 = conv(a3, w4, b4);
    auto ac = conv(xc, wc, bc).sigmoid_();
    auto mx2 = spatial_max(a2), mx4 = spatial_max(z4);
    ctx->set_materialize_grads(false);
    if (grad) {
      // Kept for backward: three of the seven maps (a1, a2, a3), and x, which autograd keeps for
      // MFA's product anyway. Made again there: x's channels-last copy, u = a1 + a2 and CLIA's map
      // (one 1x1 convolution: 214 MB less at the paper's widths for ~2% of the step); conv4's
      // maxima stand for z4 unless they are many (its backward needs no more: see there).
      const Rows r{xc.size(0), xc.size(1), xc.size(2) * xc.size(3)};
      auto m4 = maxima(z4, mx4, r, r.n * r.C / kSparseTies);
      ctx->save_for_backward({x, a1, a2, a3, m4.all ? Tensor() : z4, bc, mx2, mx4, w1, w2, w3, w4, wc});
      ctx->saved_data["at4"] = m4.at;
      ctx->saved_data["start4"] = m4.start;
      ctx->saved_data["count4"] = m4.count;
    }
    return {a1.mean({2, 3}), mx2, a3.mean({2, 3}), mx4, ac.mean({2, 3})};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list g) {
    const auto s = ctx->get_saved_variables();
    const auto &a1 = s[1], &a2 = s[2], &a3 = s[3], &z4 = s[4], &bc = s[5], &mx2 = s[6];
    const auto &w1 = s[8], &w2 = s[9], &w3 = s[10], &w4 = s[11], &wc = s[12];
    const auto xc = s[0].contiguous(kCL);
    const Rows r{xc.size(0), xc.size(1), xc.size(2) * xc.size(3)};
    const auto cl = [](Tensor t) { return t.contiguous(kCL); };
    Tensor gW[5], gb[5];
    // conv4: only its max is used, so its output's gradient is zero but at each plane's tied
    // maxima. While those are few (the usual case: one per plane) its backward is sparse, rows of
    // w4 added where a maximum sits, instead of a dense GEMM over a map of zeros; many ties (a
    // constant region holding the maximum) keep z4 and take oneDNN's dense backward.
    const Maxima m4{ctx->saved_data["at4"].toTensor(), ctx->saved_data["start4"].toTensor(),
                    ctx->saved_data["count4"].toTensor(), !z4.defined()};
    const auto share4 = shares(m4.count, g[3], r);
    const auto spread3 = spread(g[2], r);
    auto gZ3 = torch::empty_like(a3);
    if (m4.all || !g[3].defined()) {  // (without g[3] the shares are zeros)
      const auto w4m = w4.reshape({r.C, r.C}).contiguous();
      sigmoid_grad_with_rows(gZ3.data_ptr<float>(), a3.data_ptr<float>(), spread3, m4, share4, w4m.data_ptr<float>(), r);
      auto gw = torch::zeros_like(w4);
      auto gbias = torch::zeros({r.C}, w4.options());
      float *pw = gw.data_ptr<float>(), *pb = gbias.data_ptr<float>();
      const float* y = a3.data_ptr<float>();
      const int64_t *at = m4.at.data_ptr<int64_t>(), *start = m4.start.data_ptr<int64_t>();
      for (int64_t b = 0; b < r.B; ++b)
        for (int64_t e = start[b]; e < start[b + 1]; ++e) {
          const int64_t i = at[e] / r.C, c = at[e] % r.C;
          const float sh = share4[static_cast<size_t>(b * r.C + c)];
          const float* row = y + (b * r.n + i) * r.C;
          for (int64_t k = 0; k < r.C; ++k) pw[c * r.C + k] += sh * row[k];
          pb[c] += sh;
        }
      gW[3] = gw, gb[3] = gbias;
    } else {
      auto [ga, gw, gbias] = conv_backward(max_grad_map(z4, s[7], share4, r), a3, w4);
      const auto gA3 = cl(ga);
      gW[3] = gw, gb[3] = gbias;
      // a3: conv4's gradient + the mean's spread, through the sigmoid
      sigmoid_grad_pass(gZ3.data_ptr<float>(), gA3.data_ptr<float>(), nullptr, a3.data_ptr<float>(), &spread3, nullptr, nullptr,
                        nullptr, r);
    }
    const auto u = a1 + a2;
    auto [gu, gw3, gb3] = conv_backward(gZ3, u, w3);
    const auto gU = cl(gu);
    gW[2] = gw3, gb[2] = gb3;
    // a2: u's gradient + the max's share at its tied maxima, through the sigmoid
    const auto share2 = shares(maxima(a2, mx2, r, 0).count, g[1], r);
    auto gZ2 = torch::empty_like(a2);
    sigmoid_grad_pass(gZ2.data_ptr<float>(), gU.data_ptr<float>(), nullptr, a2.data_ptr<float>(), nullptr, a2.data_ptr<float>(), mx2.data_ptr<float>(), &share2, r);
    auto [ga1, gw2, gb2] = conv_backward(gZ2, a1, w2);
    auto gA1 = cl(ga1);
    gW[1] = gw2, gb[1] = gb2;
    // a1: conv2's gradient + u's + the mean's spread, through the sigmoid
    const auto spread1 = spread(g[0], r);
    sigmoid_grad_pass(gA1.data_ptr<float>(), gA1.data_ptr<float>(), gU.data_ptr<float>(), a1.data_ptr<float>(), &spread1, nullptr,
                      nullptr, nullptr, r);
    auto [gx, gw1, gb1] = conv_backward(gA1, xc, w1);
    gW[0] = gw1, gb[0] = gb1;
    // CLIA's map: only its mean is used
    if (g[4].defined()) {
      auto ac = conv(xc, wc, bc).sigmoid_();
      auto gZc = torch::empty_like(ac);
      const auto spread_c = spread(g[4], r);
      sigmoid_grad_pass(gZc.data_ptr<float>(), nullptr, nullptr, ac.data_ptr<float>(), &spread_c, nullptr, nullptr, nullptr, r);
      auto [gxc, gwc, gbc] = conv_backward(gZc, xc, wc);
      gx = gx.add_(gxc);
      gW[4] = gwc, gb[4] = gbc;
    } else {
      gW[4] = torch::zeros_like(wc), gb[4] = torch::zeros({wc.size(0)}, wc.options());
    }
    return {gx, gW[0], gb[0], gW[1], gb[1], gW[2], gb[2], gW[3], gb[3], gW[4], gb[4], Tensor()};
  }
};

}  // namespace

bool mfa_chain_applies(const torch::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.dim() == 4 && x.numel() > 0 &&
         !autocast_enabled(x.device());
}

MFAPools mfa_chain(const torch::Tensor& x, const MFAWeights& w) {
  // Whether autograd will call backward (as Function::apply decides it): only then the node keeps
  // maps and records conv4's maxima.
  bool grad = x.requires_grad();
  for (const auto* t : {&w.w1, &w.b1, &w.w2, &w.b2, &w.w3, &w.b3, &w.w4, &w.b4, &w.wc, &w.bc}) grad = grad || t->requires_grad();
  grad = grad && torch::GradMode::is_enabled();
  const auto p = Chain::apply(x, w.w1, w.b1, w.w2, w.b2, w.w3, w.b3, w.w4, w.b4, w.wc, w.bc, grad);
  return {p[0], p[1], p[2], p[3], p[4]};
}

void set_mfa_chain(bool on) { g_chain = on; }
bool mfa_chain() { return g_chain; }

}  // namespace drifa
