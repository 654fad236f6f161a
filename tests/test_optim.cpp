// drifa::FusedAdam against LibTorch's Adam: the same parameters and moments step after step, the
// same state (checkpoints load across the two), the fall-back for what it does not fuse; and the
// BLAS thread setting configure_threads applies.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "drifa/optim/fused_adam.h"
#include "drifa/runtime/threads.h"

using namespace drifa;

namespace {

// Parameter shapes as in DRIFA-Net: scalars, per-channel vectors, 1x1 convolution weights and one
// tensor large enough to be split over threads.
std::vector<torch::Tensor> make_params(torch::Dtype dtype, uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<torch::Tensor> ps;
  for (auto shape : std::vector<std::vector<int64_t>>{{1}, {16}, {32, 16, 1, 1}, {128, 3, 3, 3}, {300, 257}})
    ps.push_back(torch::randn(shape, torch::dtype(dtype)).requires_grad_());
  return ps;
}

std::vector<torch::Tensor> clone_params(const std::vector<torch::Tensor>& ps) {
  std::vector<torch::Tensor> out;
  for (const auto& p : ps) out.push_back(p.detach().clone().requires_grad_());
  return out;
}

// The same gradients for both sets: step k's gradient of parameter i from a fixed seed, with some
// large and some tiny entries so the second moment spans magnitudes.
void set_grads(std::vector<torch::Tensor>& ps, int k) {
  for (size_t i = 0; i < ps.size(); ++i) {
    torch::manual_seed(1000 * k + i);
    auto g = torch::randn_like(ps[i]) * (i % 2 ? 1e-3 : 3.0);
    ps[i].mutable_grad() = g;
  }
}

// Steps from..to-1 of both optimisers, each over its own parameters with the same gradients.
void steps_alike(torch::optim::Adam& x, std::vector<torch::Tensor>& xp, torch::optim::Adam& y,
                 std::vector<torch::Tensor>& yp, int from, int to) {
  for (int k = from; k < to; ++k) {
    set_grads(xp, k);
    set_grads(yp, k);
    x.step();
    y.step();
  }
}

// Largest |a - b| relative to max(1, |b|) over a list of tensor pairs.
double worst(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double w = 0;
  for (size_t i = 0; i < a.size(); ++i)
    w = std::max(w, ((a[i] - b[i]).abs() / b[i].abs().clamp_min(1)).max().item<double>());
  return w;
}

std::vector<torch::Tensor> moments(torch::optim::Adam& opt, const std::vector<torch::Tensor>& ps, bool second) {
  std::vector<torch::Tensor> out;
  for (const auto& p : ps) {
    auto* s = adam_state(opt, p);
    out.push_back(second ? s->exp_avg_sq() : s->exp_avg());
  }
  return out;
}

}  // namespace

TEST(FusedAdam, EqualsLibTorchAdamStepAfterStep) {
  for (double wd : {0.0, 0.01}) {
    auto a = make_params(torch::kFloat32, 7), b = clone_params(a);
    const auto start = clone_params(a);
    auto o = torch::optim::AdamOptions(1e-2).weight_decay(wd);
    FusedAdam fused(a, o);
    torch::optim::Adam plain(b, o);
    steps_alike(fused, a, plain, b, 0, 6);
    // Float arithmetic in the same order; ATen's vector kernels use fused multiply-adds where
    // this loop does not, so the two may differ in the last bits, nowhere near 1e-6.
    EXPECT_LT(worst(a, b), 1e-6) << "weight decay " << wd;
    EXPECT_LT(worst(moments(fused, a, false), moments(plain, b, false)), 1e-6);
    EXPECT_LT(worst(moments(fused, a, true), moments(plain, b, true)), 1e-6);
    // and the steps did something: each moves an entry by about lr = 1e-2, and six of them with
    // gradients of random sign leave entries 0.015 to 0.025 from where they started on average
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_GT((a[i] - start[i]).abs().mean().item<double>(), 0.01) << "parameter " << i;
    ASSERT_NE(adam_state(fused, a[0]), nullptr);
    EXPECT_EQ(adam_state(fused, a[0])->step(), 6);
  }
}

// Channels-last weights (precision auto's channels-last knob, runtime/layout.h) take the one-pass
// path too: their gradients and moments share their strides. The result equals LibTorch's Adam,
// the layout is kept, and a checkpoint's contiguous moments are put in the parameter's layout.
TEST(FusedAdam, FusesChannelsLastWeights) {
  const auto to_cl = [](std::vector<torch::Tensor> ps) {
    for (auto& p : ps)
      if (p.dim() == 4) p = p.detach().contiguous(torch::MemoryFormat::ChannelsLast).requires_grad_();
    return ps;
  };
  auto a = to_cl(make_params(torch::kFloat32, 9)), b = clone_params(make_params(torch::kFloat32, 9));
  ASSERT_FALSE(a[3].is_contiguous());  // [128, 3, 3, 3] in channels-last
  FusedAdam fused(a, torch::optim::AdamOptions(1e-2));
  torch::optim::Adam plain(b, torch::optim::AdamOptions(1e-2));
  // b's gradients, each in its a-parameter's layout (randn_like would fill a channels-last
  // tensor in memory order: other values)
  const auto same_grads = [&](bool in_layout) {
    for (size_t i = 0; i < a.size(); ++i)
      a[i].mutable_grad() = in_layout ? b[i].grad().contiguous(a[i].suggest_memory_format()) : b[i].grad().clone();
  };
  for (int k = 0; k < 4; ++k) {
    set_grads(b, k);
    same_grads(true);
    EXPECT_TRUE(fused.fusable()) << "step " << k;
    fused.step();
    plain.step();
  }
  EXPECT_LT(worst(a, b), 1e-6);
  EXPECT_LT(worst(moments(fused, a, false), moments(plain, b, false)), 1e-6);
  EXPECT_LT(worst(moments(fused, a, true), moments(plain, b, true)), 1e-6);
  EXPECT_TRUE(a[3].is_contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_EQ(adam_state(fused, a[3])->exp_avg().strides(), a[3].strides());
  // a gradient in another layout than its parameter's: LibTorch's step, the same numbers
  set_grads(b, 4);
  same_grads(false);
  EXPECT_FALSE(fused.fusable());
  fused.step();
  plain.step();
  EXPECT_LT(worst(a, b), 1e-6);
  // moments as a checkpoint loads them (contiguous) beside channels-last weights
  auto* st = adam_state(fused, a[3]);
  st->exp_avg(st->exp_avg().contiguous());
  st->exp_avg_sq(st->exp_avg_sq().contiguous());
  set_grads(b, 5);
  same_grads(true);
  EXPECT_TRUE(fused.fusable());
  fused.step();
  plain.step();
  EXPECT_LT(worst(a, b), 1e-6);
  EXPECT_EQ(adam_state(fused, a[3])->exp_avg_sq().strides(), a[3].strides());
}

// A size-1 dimension's stride is arbitrary: autograd gives a 1x1 convolution's [C, C, 1, 1]
// weight (strides [C, 1, 1, 1]) a gradient with strides [C, 1, C, C] (the demo model's MFA
// pointwise convolutions, LibTorch 1.13). The walk over memory is the same, so the step fuses;
// comparing the strides whole sent every step of the demo to LibTorch's Adam.
TEST(FusedAdam, FusesWhenStridesDifferOnlyWhereTheSizeIsOne) {
  auto w = torch::randn({16, 16, 1, 1}).requires_grad_();
  auto ref = w.detach().clone().requires_grad_();
  const auto start = w.detach().clone();
  FusedAdam fused({w}, torch::optim::AdamOptions(1e-2));
  torch::optim::Adam plain({ref}, torch::optim::AdamOptions(1e-2));
  for (int k = 0; k < 3; ++k) {
    auto g = torch::randn({16, 16, 1, 1});
    w.mutable_grad() = torch::empty_strided({16, 16, 1, 1}, {16, 1, 16, 16}).copy_(g);
    ref.mutable_grad() = g.clone();
    ASSERT_NE(w.grad().strides(), w.strides());
    EXPECT_TRUE(fused.fusable()) << "step " << k;
    fused.step();
    plain.step();
  }
  EXPECT_LT(worst({w}, {ref}), 1e-6);
  EXPECT_GT((w - start).abs().mean().item<double>(), 0.01);  // three steps of about lr each
  // strides that differ where the size is over 1 still hand the step to LibTorch's Adam
  w.mutable_grad() = torch::randn({16, 16}).t().reshape({16, 16, 1, 1});
  ASSERT_FALSE(w.grad().is_contiguous());
  EXPECT_FALSE(fused.fusable());
}

TEST(FusedAdam, CheckpointsLoadAcrossFusedAndLibTorchAdam) {
  auto a = make_params(torch::kFloat32, 11), b = clone_params(a);
  FusedAdam fused(a, torch::optim::AdamOptions(3e-3));
  for (int k = 0; k < 3; ++k) {
    set_grads(a, k);
    fused.step();
  }
  // The fused optimiser's state, saved and loaded into LibTorch's Adam (parameters copied too):
  // the next steps agree, so a run's checkpoint resumes whichever optimiser reads it.
  std::stringstream buf;
  torch::save(fused, buf);
  {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < a.size(); ++i) b[i].copy_(a[i]);
  }
  torch::optim::Adam plain(b, torch::optim::AdamOptions(3e-3));
  torch::load(plain, buf);
  steps_alike(fused, a, plain, b, 3, 5);
  EXPECT_LT(worst(a, b), 1e-6);
  EXPECT_LT(worst(moments(fused, a, true), moments(plain, b, true)), 1e-6);
}

TEST(FusedAdam, HandsWhatItDoesNotFuseToAdam) {
  // float64 parameters and amsgrad take LibTorch's own step: bit for bit the same results.
  for (bool ams : {false, true}) {
    auto dtype = ams ? torch::kFloat32 : torch::kFloat64;
    auto a = make_params(dtype, 3), b = clone_params(a);
    auto o = torch::optim::AdamOptions(1e-2).amsgrad(ams);
    FusedAdam fused(a, o);
    torch::optim::Adam plain(b, o);
    steps_alike(fused, a, plain, b, 0, 3);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "amsgrad " << ams << " param " << i;
  }
}

TEST(FusedAdam, RunsTheClosureFirstAsAdamDoes) {
  // The closure sets the gradients, so it runs before the step decides how to update: for float64
  // parameters whose gradients appear only in the closure, Adam's own step (bit for bit); for
  // float32 ones the fused step (within 1e-6); both return the closure's loss.
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    auto a = make_params(dtype, 5), b = clone_params(a);
    auto closure_for = [](std::vector<torch::Tensor>& ps) {
      return [&ps]() {
        torch::Tensor loss = torch::zeros({}, ps[0].options());
        for (size_t i = 0; i < ps.size(); ++i) {
          if (ps[i].grad().defined()) ps[i].mutable_grad().zero_();
          loss = loss + (ps[i] * ps[i]).sum() * double(i + 1);
        }
        loss.backward();
        return loss;
      };
    };
    FusedAdam fused(a, torch::optim::AdamOptions(1e-2));
    torch::optim::Adam plain(b, torch::optim::AdamOptions(1e-2));
    for (int k = 0; k < 3; ++k) {
      auto la = fused.step(closure_for(a)), lb = plain.step(closure_for(b));
      ASSERT_TRUE(la.defined());
      EXPECT_NEAR(la.item<double>(), lb.item<double>(), 1e-6 * std::abs(lb.item<double>()));
    }
    if (dtype == torch::kFloat64)
      for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "param " << i;
    else
      EXPECT_LT(worst(a, b), 1e-6);
  }
}

TEST(Threads, ConfigureThreadsRunsOpenBLASOnTheCallingThread) {
  if (blas_threads() == 0) GTEST_SKIP() << "the BLAS in this process is not OpenBLAS";
  const int before_at = at::get_num_threads();
  ASSERT_TRUE(set_blas_threads(2));
  EXPECT_EQ(blas_threads(), 2);
  configure_threads(2);
  EXPECT_EQ(blas_threads(), 1);
  // out of range: refused with the setting named, the thread count left as it was
  for (int bad : {0, -3, max_threads() + 1}) {
    try {
      set_blas_threads(bad);
      ADD_FAILURE() << "set_blas_threads(" << bad << ") was accepted";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("threads"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(blas_threads(), 1);
  EXPECT_EQ(at::get_num_threads(), 2);
  at::set_num_threads(before_at);
}
