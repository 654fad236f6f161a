// The fused attention kernels (model/attention_kernels) against the spec's arithmetic as plain
// ATen ops: MFA and MIFA outputs and the gradient of every input and parameter, over widths,
// odd map sizes and tied pools; and the kernels' own gradients against finite differences in
// double precision.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <string>

#include <torch/torch.h>

#include "drifa/model/attention_kernels.h"
#include "drifa/model/drifa_net.h"
#include "drifa/model/mfa.h"
#include "drifa/model/mifa.h"
#include "drifa/model/spatial_stats.h"

using namespace drifa;

namespace {

// Turns the kernels on for a test and restores both switches when it ends, even on failure. Two
// intra-op threads, so that batches of several chunks run on both (each thread its own chunks
// and weight-gradient sums) while single-chunk batches run their passes in parallel.
struct FusedGuard {
  bool before = fused_attention(), kernels = attention_kernels();
  int threads = at::get_num_threads();
  FusedGuard() {
    set_attention_kernels(true);
    at::set_num_threads(2);
  }
  ~FusedGuard() {
    set_fused_attention(before);
    set_attention_kernels(kernels);
    at::set_num_threads(threads);
  }
};

// Tied pools are compared in float64 and at widths up to 16. A constant map stays constant
// through a 1x1 convolution only if the GEMM gives identical columns bit for bit; from width 64
// neither the plain path's convolution nor the kernels' GEMM does (the map spreads by about 1e-15
// even in float64), so which pixel is the maximum is decided by rounding, each path follows its
// own ties exactly, and their gradients legitimately differ at those pixels. Where the ties stay
// exact (measured: widths 8 and 16) both paths must share them alike; the hand-computed test
// below checks the sharing itself.
//
// Makes the maps whose pools tie: sample 0 is constant over every plane (each pixel ties for
// both extremes of every pooled map), and the left half of sample 1 is zero (as after a ReLU).
torch::Tensor with_ties(torch::Tensor x) {
  if (x.size(0) > 0) x[0] = x[0].mean({1, 2}, true).expand_as(x[0]).clone();
  if (x.size(0) > 1 && x.size(3) > 1) x[1].narrow(2, 0, x.size(3) / 2).zero_();
  return x;
}

struct Run {
  torch::Tensor out, grad_x;
  std::map<std::string, torch::Tensor> grads;
};

// Forward and backward through a module with a fixed upstream gradient.
Run run(torch::nn::Module& module, const std::function<torch::Tensor(const torch::Tensor&)>& f, const torch::Tensor& x,
        const torch::Tensor& upstream, bool fused) {
  set_fused_attention(fused);
  module.zero_grad();
  auto xi = x.clone().requires_grad_(true);
  Run r;
  r.out = f(xi);
  (r.out * upstream).sum().backward();
  r.out = r.out.detach();
  r.grad_x = xi.grad();
  for (const auto& p : module.named_parameters()) r.grads[p.key()] = p.value().grad().defined() ? p.value().grad().clone() : torch::Tensor();
  return r;
}

// max |a - b| relative to max(1, max |a|)
double rel(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(1.0, a.abs().max().item<double>());
}

void expect_same(const Run& plain, const Run& fused, const std::string& where) {
  EXPECT_LT(rel(plain.out, fused.out), 1e-5) << where << ": output";
  EXPECT_LT(rel(plain.grad_x, fused.grad_x), 1e-5) << where << ": input gradient";
  ASSERT_EQ(plain.grads.size(), fused.grads.size());
  for (const auto& [name, g] : plain.grads) {
    ASSERT_TRUE(g.defined()) << where << ": no gradient for " << name;
    ASSERT_TRUE(fused.grads.at(name).defined()) << where << ": fused path gives no gradient for " << name;
    EXPECT_LT(rel(g, fused.grads.at(name)), 1e-5) << where << ": gradient of " << name;
  }
}

struct Shape {
  int64_t b, c, h, w;
};

// Widths 8..512 and maps 1x1..64x64, odd ones included; large widths on small maps as in the
// network (keeps the test to seconds).
const std::vector<Shape> kShapes = {{3, 8, 1, 1},  {3, 8, 5, 7},  {2, 16, 33, 31}, {2, 8, 64, 64},  {3, 64, 9, 9},
                                    {2, 64, 32, 32}, {3, 128, 4, 3}, {2, 256, 8, 8},  {2, 512, 2, 2}, {2, 512, 1, 1},
                                    {2, 512, 5, 5}};

std::string name_of(const Shape& s) {
  return "B" + std::to_string(s.b) + " C" + std::to_string(s.c) + " " + std::to_string(s.h) + "x" + std::to_string(s.w);
}

}  // namespace

TEST(AttentionKernels, FusedMFAEqualsPlainInValuesAndEveryGradient) {
  FusedGuard guard;
  for (const auto& s : kShapes) {
    torch::manual_seed(11 + s.c + s.h);
    MFA mfa(s.c);
    initialise(*mfa);
    // learnable scales away from 1, so their gradients are not special
    {
      torch::NoGradGuard ng;
      mfa->global_scale.uniform_(0.5, 1.5);
      mfa->local_scale.uniform_(0.5, 1.5);
      mfa->alpha.uniform_(0.5, 1.5);
    }
    for (bool ties : {false, true}) {
      if (ties && s.c > 16) continue;
      const auto dtype = ties ? torch::kFloat64 : torch::kFloat32;
      mfa->to(dtype);
      auto x = torch::randn({s.b, s.c, s.h, s.w}, dtype);
      if (ties) x = with_ties(x);
      auto up = torch::randn({s.b, s.c, s.h, s.w}, dtype);
      auto f = [&](const torch::Tensor& t) { return mfa->forward(t); };
      const auto where = name_of(s) + (ties ? " with ties" : "");
      expect_same(run(*mfa, f, x, up, false), run(*mfa, f, x, up, true), where);
    }
  }
}

TEST(AttentionKernels, FusedMIFAEqualsPlainInValuesAndEveryGradient) {
  FusedGuard guard;
  for (const auto& s : kShapes) {
    for (int64_t modalities : {2, 3}) {
      torch::manual_seed(23 + s.c + s.h + modalities);
      MIFA mifa(s.c, modalities);
      initialise(*mifa);
      for (bool ties : {false, true}) {
        if (ties && s.c > 16) continue;
        const auto dtype = ties ? torch::kFloat64 : torch::kFloat32;
        mifa->to(dtype);
        std::vector<torch::Tensor> xs;
        for (int64_t m = 0; m < modalities; ++m) {
          auto x = torch::randn({s.b, s.c, s.h, s.w}, dtype);
          xs.push_back(ties && m == 0 ? with_ties(x) : x);
        }
        // every modality's input in one tensor, so one run() sees all their gradients
        auto stacked = torch::stack(xs);
        auto presence = torch::ones({s.b, modalities}, dtype);
        presence[0][modalities - 1] = 0;  // a sample without its last modality
        for (bool masked : {false, true}) {
          auto f = [&](const torch::Tensor& t) {
            auto out = mifa->forward(std::vector<torch::Tensor>(t.unbind(0)), masked ? presence : torch::Tensor());
            return torch::stack(out);
          };
          auto up = torch::randn_like(stacked);
          const auto where = name_of(s) + " M" + std::to_string(modalities) + (ties ? " with ties" : "") +
                             (masked ? " with a presence mask" : "");
          expect_same(run(*mifa, f, stacked, up, false), run(*mifa, f, stacked, up, true), where);
        }
      }
    }
  }
}

TEST(AttentionKernels, TiedPoolsShareTheirGradientAsATenDoes) {
  // A constant map: every pixel is the maximum of every row, so max_a2's gradient reaches each of
  // the n pixels as g / n, which the plain arithmetic (amax's backward) gives too; checked by hand
  // on the kernel's own outputs.
  torch::manual_seed(4);
  const int64_t c = 4, n = 6;
  auto x = torch::full({1, c, 2, 3}, 0.3, torch::kFloat64).requires_grad_(true);
  MFAWeights w;
  auto mk = [](std::initializer_list<int64_t> s) { return (torch::randn(s, torch::kFloat64) * 0.5).requires_grad_(true); };
  w = {mk({c, c, 1, 1}), mk({c}), mk({c, c, 1, 1}), mk({c}), mk({c, c, 1, 1}), mk({c}), mk({c, c, 1, 1}), mk({c}),
       mk({c, c, 1, 1}), mk({c})};
  auto p = fused_mfa_pools(x, w);
  // only max_z4 gets a gradient: d max_z4 / d b4 is 1 (shared by n ties, summed back), and
  // d max_z4 / d x at each pixel is w4 (w3 (a2' w2 a1' + a1') ...) / n, the same for every pixel
  p.max_z4.sum().backward();
  EXPECT_TRUE(torch::allclose(w.b4.grad(), torch::ones({c}, torch::kFloat64), 1e-12, 1e-12)) << w.b4.grad();
  auto gx = x.grad().view({c, n});
  EXPECT_TRUE(torch::allclose(gx, gx.select(1, 0).unsqueeze(1).expand({c, n}), 1e-12, 1e-12)) << gx;
  EXPECT_GT(gx.abs().max().item<double>(), 1e-6);
  // and the plain pooled maximum of z4 on the same constant map agrees, pixel by pixel
  auto xp = x.detach().clone().requires_grad_(true);
  auto conv = [](const torch::Tensor& t, const torch::Tensor& wt, const torch::Tensor& b) { return torch::conv2d(t, wt, b); };
  auto a1 = torch::sigmoid(conv(xp, w.w1, w.b1));
  auto a2 = torch::sigmoid(conv(a1, w.w2, w.b2));
  auto a3 = torch::sigmoid(conv(a1 + a2, w.w3, w.b3));
  conv(a3, w.w4, w.b4).amax({2, 3}).sum().backward();
  EXPECT_LT((xp.grad() - x.grad()).abs().max().item<double>(), 1e-12);
}

namespace {

// Central finite differences of loss() with respect to every element of t, in double precision.
torch::Tensor numeric_gradient(const std::function<double()>& loss, torch::Tensor t) {
  torch::NoGradGuard ng;
  auto g = torch::zeros_like(t);
  auto flat = t.view({-1});
  auto gf = g.view({-1});
  const double eps = 1e-6;
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const double v = flat[i].item<double>();
    flat[i] = v + eps;
    const double up = loss();
    flat[i] = v - eps;
    const double down = loss();
    flat[i] = v;
    gf[i] = (up - down) / (2 * eps);
  }
  return g;
}

}  // namespace

TEST(AttentionKernels, DoublePrecisionGradientsEqualFiniteDifferences) {
  torch::manual_seed(9);
  const int64_t b = 2, c = 3;
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  for (auto hw : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 4}}) {
    auto x = torch::randn({b, c, hw.first, hw.second}, opts).requires_grad_(true);
    auto mk = [&](std::initializer_list<int64_t> s) { return torch::randn(s, opts).requires_grad_(true); };
    MFAWeights w{mk({c, c, 1, 1}), mk({c}), mk({c, c, 1, 1}), mk({c}), mk({c, c, 1, 1}), mk({c}),
                 mk({c, c, 1, 1}), mk({c}), mk({c, c, 1, 1}), mk({c})};
    std::vector<torch::Tensor> r;  // one random weight per pooled output
    for (int k = 0; k < 5; ++k) r.push_back(torch::randn({b, c}, opts));
    auto mfa_loss = [&] {
      auto p = fused_mfa_pools(x, w);
      return (p.mean_a1 * r[0] + p.max_a2 * r[1] + p.mean_a3 * r[2] + p.max_z4 * r[3] + p.mean_c1 * r[4]).sum();
    };
    mfa_loss().backward();
    std::vector<std::pair<std::string, torch::Tensor>> inputs = {
        {"x", x},       {"w1", w.w1}, {"b1", w.b1}, {"w2", w.w2}, {"b2", w.b2}, {"w3", w.w3}, {"b3", w.b3},
        {"w4", w.w4}, {"b4", w.b4}, {"wc", w.wc}, {"bc", w.bc}};
    for (auto& [name, t] : inputs) {
      auto numeric = numeric_gradient([&] { return mfa_loss().item<double>(); }, t);
      EXPECT_LT((numeric - t.grad()).abs().max().item<double>(), 1e-6 * std::max(1.0, numeric.abs().max().item<double>()))
          << "MFA " << hw.first << "x" << hw.second << " d/d" << name << "\nnumeric " << numeric << "\nkernel " << t.grad();
    }
    auto lw = mk({c, c, 1, 1}), lb = mk({c});
    auto local_loss = [&] {
      auto p = fused_local_pools(x, lw, lb);
      return (p.min * r[0] + p.mean * r[1] + p.max * r[2]).sum();
    };
    x.mutable_grad() = torch::Tensor();
    local_loss().backward();
    for (auto& [name, t] : std::vector<std::pair<std::string, torch::Tensor>>{{"x", x}, {"w", lw}, {"b", lb}}) {
      auto numeric = numeric_gradient([&] { return local_loss().item<double>(); }, t);
      EXPECT_LT((numeric - t.grad()).abs().max().item<double>(), 1e-6 * std::max(1.0, numeric.abs().max().item<double>()))
          << "MIFA local " << hw.first << "x" << hw.second << " d/d" << name;
    }
  }
}

TEST(AttentionKernels, InputsTheKernelsDoNotTakeUseThePlainArithmetic) {
  EXPECT_TRUE(kernels_apply(torch::rand({2, 3, 4, 4})));
  EXPECT_TRUE(kernels_apply(torch::rand({2, 3, 4, 4}, torch::kFloat64)));
  EXPECT_FALSE(kernels_apply(torch::rand({2, 3, 4, 4}).to(torch::kBFloat16)));
  EXPECT_FALSE(kernels_apply(torch::rand({2, 3, 4, 4}).contiguous(at::MemoryFormat::ChannelsLast)));
  EXPECT_FALSE(kernels_apply(torch::rand({2, 3, 4})));
  // and a bfloat16 or channels-last MFA still gives the plain arithmetic's answer
  FusedGuard guard;
  torch::manual_seed(2);
  MFA mfa(8);
  initialise(*mfa);
  auto x = torch::randn({2, 8, 6, 6});
  set_fused_attention(true);
  auto ref = mfa->forward(x);
  auto cl = mfa->forward(x.contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_LT((ref - cl).abs().max().item<double>(), 1e-5);
}
