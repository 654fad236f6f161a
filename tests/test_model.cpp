// The network of the spec: shapes, names, parameter counts, modes, gradients, learning; the fused
// pooling kernels against the plain arithmetic; the allocator setting.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include <sys/resource.h>

#include "drifa/drifa.h"

using namespace drifa;

namespace {

ModelConfig tiny(int64_t modalities = 2, std::vector<int64_t> classes = {5, 7}) {
  ModelConfig c;
  c.modalities = modalities;
  c.classes = std::move(classes);
  c.widths = widths_preset("tiny");
  c.image_size = 32;
  return c;
}

std::vector<torch::Tensor> random_inputs(const ModelConfig& c, int64_t batch, uint64_t seed = 7) {
  torch::manual_seed(seed);
  std::vector<torch::Tensor> xs;
  for (int64_t m = 0; m < c.modalities; ++m) xs.push_back(torch::rand({batch, c.in_channels, c.image_size, c.image_size}));
  return xs;
}

std::set<std::string> names_of(const torch::nn::Module& m) {
  std::set<std::string> s;
  for (const auto& [n, t] : runs::model_state(m)) s.insert(n);
  return s;
}

}  // namespace

TEST(Model, ParameterCountsEqualTheSpecTable) {
  EXPECT_EQ(count_parameters(*DRIFANet(ModelConfig::paper())), 53865668);
  EXPECT_EQ(count_parameters(*DRIFANet(ModelConfig::four_modality())), 107029107);
  EXPECT_EQ(count_parameters(*DRIFANet(tiny())), 859988);
}

TEST(Model, SummaryCountMatchesBuiltModelForEveryLayoutAndAblation) {
  for (auto att : {Attention::None, Attention::MFA, Attention::MIFA, Attention::DRIFA}) {
    for (const char* w : {"tiny", "resnet34"}) {
      for (int64_t m : {2, 3}) {
        auto c = tiny(m, {3, 2, 4});
        c.attention = att;
        c.widths = widths_preset(w);
        if (std::string(w) == "resnet34") for (auto& x : c.widths) x /= 8;  // keep it small
        EXPECT_EQ(summarize(c).total_params, count_parameters(*DRIFANet(c)))
            << to_string(att) << " " << w << " M=" << m;
      }
    }
  }
  EXPECT_EQ(summarize(ModelConfig::paper()).total_params, 53865668);
}

TEST(Model, OutputShapesForTwoThreeAndFourModalities) {
  for (int64_t m : {2, 3, 4}) {
    auto c = tiny(m, {4, 2, 3});
    DRIFANet net(c);
    net->set_mode(Mode::Eval);
    auto r = net->forward(random_inputs(c, 3), {/*keep_stages=*/true});
    ASSERT_EQ(r.logits.size(), 3u);
    EXPECT_EQ(r.logits[0].sizes(), (std::vector<int64_t>{3, 4}));
    EXPECT_EQ(r.logits[1].sizes(), (std::vector<int64_t>{3, 2}));
    EXPECT_EQ(r.logits[2].sizes(), (std::vector<int64_t>{3, 3}));
    EXPECT_EQ(r.features.sizes(), (std::vector<int64_t>{3, m * 64}));
    ASSERT_EQ(r.stages.size(), 8u);
    // 32 -> stem 16 -> pool 8; stride 2 at stages 2, 4, 6
    const int64_t sizes[] = {8, 8, 4, 4, 2, 2, 1, 1};
    for (int64_t i = 0; i < 8; ++i) {
      ASSERT_EQ(static_cast<int64_t>(r.stages[i].size()), m);
      EXPECT_EQ(r.stages[i][0].sizes(), (std::vector<int64_t>{3, c.widths[i], sizes[i], sizes[i]}));
    }
    for (const auto& l : r.logits) EXPECT_TRUE(torch::isfinite(l).all().item<bool>());
  }
}

TEST(Model, CanonicalNamesMatchTheSpec) {
  auto c = tiny(3, {5, 7});
  // Build the expected list from spec section 6, literally.
  std::set<std::string> want;
  auto mfa = [&](const std::string& p) {
    for (auto s : {"global_scale", "local_scale", "alpha"}) want.insert(p + "." + s);
    for (auto s : {"conv1", "conv2", "conv3", "conv4", "fc"})
      for (auto t : {"weight", "bias"}) want.insert(p + ".hifa." + s + "." + t);
    for (auto s : {"conv1", "conv2"})
      for (auto t : {"weight", "bias"}) want.insert(p + ".clia." + s + "." + t);
  };
  auto bn = [&](const std::string& p) {
    for (auto s : {"weight", "bias", "running_mean", "running_var"}) want.insert(p + "." + s);
  };
  for (int m = 0; m < 3; ++m) {
    const std::string b = "branches." + std::to_string(m);
    want.insert(b + ".stem.conv.weight");
    want.insert(b + ".stem.conv.bias");
    mfa(b + ".stem.mfa");
    bn(b + ".stem.bn");
    for (int i = 0; i < 8; ++i) {
      const std::string s = b + ".stages." + std::to_string(i);
      for (auto k : {"conv1", "conv2"}) {
        want.insert(s + ".rra." + k + ".weight");
        want.insert(s + ".rra." + k + ".bias");
      }
      mfa(s + ".rra.mfa1");
      mfa(s + ".rra.mfa2");
      bn(s + ".rra.bn1");
      bn(s + ".rra.bn2");
      if (i == 2 || i == 4 || i == 6) {
        want.insert(s + ".rra.shortcut.conv.weight");
        want.insert(s + ".rra.shortcut.conv.bias");
        bn(s + ".rra.shortcut.bn");
      }
      if (i < 7) mfa(s + ".mfa");
    }
  }
  for (int i = 0; i < 8; ++i) {
    const std::string f = "fusions." + std::to_string(i);
    for (auto s : {"fc.weight", "fc.bias", "global_scale", "local_scale"}) want.insert(f + "." + s);
    for (int m = 0; m < 3; ++m) {
      want.insert(f + ".local." + std::to_string(m) + ".weight");
      want.insert(f + ".local." + std::to_string(m) + ".bias");
      want.insert(f + ".alpha." + std::to_string(m));
    }
  }
  for (int t = 0; t < 2; ++t) {
    want.insert("heads." + std::to_string(t) + ".weight");
    want.insert("heads." + std::to_string(t) + ".bias");
  }
  DRIFANet net(c);
  EXPECT_EQ(names_of(*net), want);

  // Shapes follow PyTorch: conv [out, in, kh, kw], linear [out, in], scales [1] / [C].
  auto state = runs::model_state(*net);
  auto shape = [&](const std::string& n) {
    for (auto& [k, t] : state)
      if (k == n) return t.sizes().vec();
    return std::vector<int64_t>{};
  };
  EXPECT_EQ(shape("branches.0.stem.conv.weight"), (std::vector<int64_t>{8, 3, 7, 7}));
  EXPECT_EQ(shape("branches.1.stages.2.rra.shortcut.conv.weight"), (std::vector<int64_t>{16, 8, 1, 1}));
  EXPECT_EQ(shape("branches.2.stages.0.mfa.hifa.fc.weight"), (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(shape("fusions.7.fc.weight"), (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(shape("fusions.3.global_scale"), (std::vector<int64_t>{1}));
  EXPECT_EQ(shape("fusions.3.alpha.2"), (std::vector<int64_t>{16}));
  EXPECT_EQ(shape("heads.1.weight"), (std::vector<int64_t>{7, 192}));
}

TEST(Model, AblationsRemoveExactlyTheirParts) {
  auto c = tiny();
  auto count_with = [&](Attention a, const std::string& part) {
    c.attention = a;
    int n = 0;
    for (const auto& s : names_of(*DRIFANet(c))) n += s.find(part) != std::string::npos;
    return n;
  };
  EXPECT_EQ(count_with(Attention::None, "mfa"), 0);
  EXPECT_EQ(count_with(Attention::None, "fusions."), 0);
  EXPECT_GT(count_with(Attention::MFA, "mfa"), 0);
  EXPECT_EQ(count_with(Attention::MFA, "fusions."), 0);
  EXPECT_EQ(count_with(Attention::MIFA, "mfa"), 0);
  EXPECT_GT(count_with(Attention::MIFA, "fusions."), 0);
}

TEST(Model, InitialisationIsGlorotUniformWithZeroBiases) {
  torch::manual_seed(1);
  DRIFANet net(ModelConfig::paper());
  auto w = net->branches[0]->as<BranchImpl>()->stages[6]->rra->conv2->weight;  // [512, 512, 3, 3]
  const double bound = std::sqrt(6.0 / (512 * 9 + 512 * 9));
  EXPECT_LE(w.abs().max().item<double>(), bound);
  EXPECT_GT(w.abs().max().item<double>(), 0.99 * bound);
  // Uniform(-b, b) has std b / sqrt(3).
  EXPECT_NEAR(w.std().item<double>(), bound / std::sqrt(3.0), 0.01 * bound);
  EXPECT_EQ(net->branches[0]->as<BranchImpl>()->stages[6]->rra->conv2->bias.abs().sum().item<double>(), 0.0);
  auto bn = net->branches[1]->as<BranchImpl>()->stem->bn;
  EXPECT_DOUBLE_EQ(bn->options.eps(), 1e-3);
  EXPECT_DOUBLE_EQ(bn->options.momentum().value(), 0.01);
}

TEST(Model, MFAWithZeroWeightsGivesTheHandComputedGate) {
  // All conv/fc weights and biases zero: every sigmoid sees 0 -> 0.5.
  // HIFA: g = sigmoid(0) = 0.5; CLIA: l = 0.5 + 0.5 = 1; att = sigmoid(1 * 0.5 + 1 * 1).
  MFA mfa(4);
  torch::NoGradGuard ng;
  for (auto& p : mfa->named_parameters())
    if (p.key().find("hifa") != std::string::npos || p.key().find("clia") != std::string::npos) p.value().zero_();
  auto x = torch::randn({2, 4, 5, 3});
  auto y = mfa->forward(x);
  const double gate = 1.0 / (1.0 + std::exp(-1.5));
  EXPECT_TRUE(torch::allclose(y, x * gate, 1e-6, 1e-6));
  // alpha and local_scale act per channel.
  mfa->alpha.copy_(torch::tensor({1.f, 2.f, 0.f, -1.f}));
  mfa->local_scale.fill_(0);
  auto y2 = mfa->forward(x);
  const double gate2 = 1.0 / (1.0 + std::exp(-0.5));
  EXPECT_TRUE(torch::allclose(y2, x * gate2 * torch::tensor({1.f, 2.f, 0.f, -1.f}).view({1, 4, 1, 1}), 1e-6, 1e-6));
}

TEST(Model, MIFAWithZeroWeightsGivesTheHandComputedGate) {
  // MGIFA: 3 * sigmoid(0) = 1.5; MLIFA: M * (0.5 + 0.5 + 0.5); att = sigmoid(1.5 + 1.5 M).
  for (int64_t M : {2, 3, 4}) {
    MIFA f(3, M);
    torch::NoGradGuard ng;
    for (auto& p : f->named_parameters())
      if (p.key().rfind("fc.", 0) == 0 || p.key().rfind("local.", 0) == 0) p.value().zero_();
    std::vector<torch::Tensor> xs;
    for (int64_t m = 0; m < M; ++m) xs.push_back(torch::randn({2, 3, 4 + m, 4}));  // sizes may differ
    f->alpha[std::to_string(M - 1)].fill_(2);
    auto out = f->forward(xs);
    const double gate = 1.0 / (1.0 + std::exp(-(1.5 + 1.5 * M)));
    for (int64_t m = 0; m < M; ++m)
      EXPECT_TRUE(torch::allclose(out[m], xs[m] * gate * (m == M - 1 ? 2.0 : 1.0), 1e-6, 1e-6)) << "M=" << M;
  }
}

TEST(Model, MIFAGlobalPartPoolsMinAvgMaxOverModalities) {
  MIFA f(2, 2);
  torch::NoGradGuard ng;
  f->fc->weight.copy_(torch::eye(2));
  f->fc->bias.zero_();
  auto a = torch::tensor({1.f, 2.f, 3.f, 6.f}).view({1, 1, 2, 2}).repeat({1, 2, 1, 1});
  auto b = torch::tensor({0.f, 0.f, 0.f, 4.f}).view({1, 1, 2, 2}).repeat({1, 2, 1, 1});
  // p_min = 1 + 0, p_avg = 3 + 1, p_max = 6 + 4
  auto g = f->mgifa({a, b});
  const double want = 1 / (1 + std::exp(-1.0)) + 1 / (1 + std::exp(-4.0)) + 1 / (1 + std::exp(-10.0));
  EXPECT_NEAR(g[0][0][0][0].item<double>(), want, 1e-6);
  EXPECT_EQ(g.sizes(), (std::vector<int64_t>{1, 2, 1, 1}));
}

TEST(Model, EvalIsDeterministicAndMCSamplingIsStochastic) {
  auto c = tiny();
  torch::manual_seed(3);
  DRIFANet net(c);
  auto xs = random_inputs(c, 4);
  torch::NoGradGuard ng;
  net->set_mode(Mode::Eval);
  auto a = net->forward(xs).logits[0], b = net->forward(xs).logits[0];
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(net->dropout_active());

  auto bn = net->branches[0]->as<BranchImpl>()->stem->bn;
  auto mean_before = bn->running_mean.clone();
  net->set_mode(Mode::MCSample);
  EXPECT_TRUE(net->dropout_active());
  EXPECT_EQ(net->mode(), Mode::MCSample);
  auto m1 = net->forward(xs).logits[0], m2 = net->forward(xs).logits[0];
  EXPECT_FALSE(torch::equal(m1, m2));
  EXPECT_GT((m1 - m2).abs().max().item<double>(), 1e-4);
  // MC sampling uses BN running statistics: they must not move.
  EXPECT_TRUE(torch::equal(bn->running_mean, mean_before));
  // The MC mean converges towards a stable value as passes grow.
  auto mean_of = [&](int n) {
    torch::Tensor s = torch::zeros_like(m1);
    for (int i = 0; i < n; ++i) s += torch::softmax(net->forward(xs).logits[0], 1);
    return s / n;
  };
  auto p1 = mean_of(64), p2 = mean_of(64);
  EXPECT_LT((p1 - p2).abs().max().item<double>(), (torch::softmax(m1, 1) - torch::softmax(m2, 1)).abs().max().item<double>());

  net->set_mode(Mode::Train);
  EXPECT_TRUE(net->is_training());
  net->forward(xs);
  EXPECT_FALSE(torch::equal(bn->running_mean, mean_before));  // training updates running stats
}

TEST(Model, PrefixThenSuffixEqualsForward) {
  auto c = tiny(3, {3});
  DRIFANet net(c);
  net->set_mode(Mode::Eval);
  auto xs = random_inputs(c, 2);
  torch::NoGradGuard ng;
  auto full = net->forward(xs);
  auto split = net->suffix(net->prefix(xs));
  EXPECT_TRUE(torch::equal(full.logits[0], split.logits[0]));
  EXPECT_TRUE(torch::equal(full.features, split.features));
}

TEST(Model, GradientsReachEveryTrainableParameter) {
  auto c = tiny(3, {5, 7});
  torch::manual_seed(11);
  DRIFANet net(c);
  net->set_mode(Mode::Train);
  auto xs = random_inputs(c, 4);
  auto r = net->forward(xs);
  auto loss = 0.5 * torch::cross_entropy_loss(r.logits[0], torch::tensor({0, 1, 2, 3})) +
              0.5 * torch::cross_entropy_loss(r.logits[1], torch::tensor({6, 5, 4, 3}));
  loss.backward();
  int checked = 0;
  for (const auto& p : net->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(net->parameters().size()));
}

TEST(Model, LossDecreasesOnAFixedTinyBatch) {
  auto c = tiny(2, {3, 2});
  // At widths 8..64 on noise images, dropout 0.25 drowns memorisation (the PyTorch port
  // behaves the same); without it the batch must be learnt almost perfectly.
  c.dropout = 0.0;
  torch::manual_seed(5);
  DRIFANet net(c);
  net->set_mode(Mode::Train);
  auto xs = random_inputs(c, 8);
  auto y0 = torch::tensor({0, 1, 2, 0, 1, 2, 0, 1}), y1 = torch::tensor({1, 0, 1, 0, 1, 0, 1, 0});
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-3));
  auto step = [&] {
    opt.zero_grad();
    auto r = net->forward(xs);
    auto loss = 0.5 * torch::cross_entropy_loss(r.logits[0], y0) + 0.5 * torch::cross_entropy_loss(r.logits[1], y1);
    loss.backward();
    opt.step();
    return loss.item<double>();
  };
  const double first = step();
  double last = 0;
  for (int i = 0; i < 30; ++i) last = step();
  EXPECT_LT(last, 0.05 * first) << "first " << first << " last " << last;
}

TEST(Model, WrongInputsGiveClearErrors) {
  auto c = tiny();
  DRIFANet net(c);
  auto xs = random_inputs(c, 2);
  try {
    net->forward({xs[0]});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("takes 2 modalities, got 1"), std::string::npos) << e.what();
  }
  try {
    net->forward({xs[0], torch::rand({2, 1, 32, 32})});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input 1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(net->forward({xs[0], torch::rand({3, 3, 32, 32})}), Error);
}

namespace {

// Restores the process-wide attention arithmetic when a test ends, even on failure.
struct FusedAttentionGuard {
  bool before = fused_attention();
  ~FusedAttentionGuard() { set_fused_attention(before); }
};

struct StatsRun {
  SpatialStats values;
  torch::Tensor grad;
};

StatsRun run_stats(const torch::Tensor& base, bool fused, bool max_only, const std::vector<torch::Tensor>& g) {
  set_fused_attention(fused);
  auto x = base.clone().requires_grad_(true);
  StatsRun r;
  torch::Tensor loss;
  if (max_only) {
    r.values.max = spatial_max(x);
    loss = (r.values.max * g[2]).sum();
  } else {
    r.values = spatial_stats(x);
    loss = (r.values.min * g[0] + r.values.mean * g[1] + r.values.max * g[2]).sum();
  }
  loss.backward();
  r.grad = x.grad();
  return r;
}

}  // namespace

TEST(SpatialStats, FusedKernelEqualsATenInValuesAndGradientsWithTies) {
  FusedAttentionGuard guard;
  torch::manual_seed(3);
  auto base = torch::rand({3, 4, 5, 7});
  base[0][0].fill_(0.25);  // a constant plane: every element ties for both minimum and maximum
  base[1][2][0][0] = 2;    // two maxima and three minima share their gradients
  base[1][2][4][6] = 2;
  base[1][2][1][1] = -1;
  base[1][2][2][2] = -1;
  base[1][2][3][3] = -1;
  base[2][3].narrow(0, 0, 2).fill_(1.0);  // a saturated sigmoid: ten ties at the maximum
  std::vector<torch::Tensor> g = {torch::randn({3, 4}), torch::randn({3, 4}), torch::randn({3, 4})};
  // NCHW and channels-last (the layout the attention's maps have since its 1x1 convolutions run
  // in it: mfa.cpp), each against ATen on the same layout
  for (const auto& layout : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast})
  for (bool max_only : {false, true}) {
    const auto in = base.contiguous(layout);
    auto plain = run_stats(in, false, max_only, g), fused = run_stats(in, true, max_only, g);
    EXPECT_TRUE(fused.grad.is_contiguous(layout));
    EXPECT_TRUE(torch::equal(plain.values.max, fused.values.max));
    EXPECT_TRUE(torch::equal(plain.values.max, base.amax({2, 3})));
    if (!max_only) {
      EXPECT_TRUE(torch::equal(plain.values.min, fused.values.min));
      EXPECT_LT((plain.values.mean - fused.values.mean).abs().max().item<double>(), 1e-6);
    }
    EXPECT_LT((plain.grad - fused.grad).abs().max().item<double>(), 1e-6) << "max_only " << max_only;
  }
  // hand check of the shared gradients on plane (1, 2): 35 elements, 2 maxima, 3 minima
  for (const auto& layout : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
  auto fused = run_stats(base.contiguous(layout), true, false, g);
  const double gmin = g[0][1][2].item<double>(), gmean = g[1][1][2].item<double>(), gmax = g[2][1][2].item<double>();
  EXPECT_NEAR(fused.grad[1][2][0][0].item<double>(), gmean / 35 + gmax / 2, 1e-6);
  EXPECT_NEAR(fused.grad[1][2][1][1].item<double>(), gmean / 35 + gmin / 3, 1e-6);
  EXPECT_NEAR(fused.grad[1][2][0][1].item<double>(), gmean / 35, 1e-6);
  // the constant plane: each element is a minimum and a maximum
  EXPECT_NEAR(fused.grad[0][0][2][3].item<double>(),
              (g[0][0][0].item<double>() + g[1][0][0].item<double>() + g[2][0][0].item<double>()) / 35, 1e-6);
  }
  // inputs the kernel does not take (double, a strided view) give the same through ATen
  set_fused_attention(true);
  EXPECT_TRUE(torch::equal(spatial_stats(base.transpose(2, 3)).max, base.amax({2, 3})));
  EXPECT_TRUE(torch::equal(spatial_stats(base.to(torch::kFloat64)).min, base.to(torch::kFloat64).amin({2, 3})));
}

TEST(SpatialStats, FusedAndPlainAttentionArithmeticGiveTheSameNetwork) {
  FusedAttentionGuard guard;
  auto cfg = tiny();
  torch::manual_seed(5);
  DRIFANet net(cfg);
  auto x = random_inputs(cfg, 6, 21);
  auto y = torch::randint(5, {6});
  struct Out {
    std::vector<torch::Tensor> logits, grads;
  };
  auto run = [&](bool fused, Mode mode) {
    set_fused_attention(fused);
    net->set_mode(mode);
    net->zero_grad();
    torch::manual_seed(77);  // the same dropout masks in train mode
    auto r = net->forward(x);
    Out o;
    for (auto& l : r.logits) o.logits.push_back(l.detach());
    if (mode == Mode::Train) {
      torch::nn::functional::cross_entropy(r.logits[0], y).backward();
      for (const auto& p : net->parameters())
        o.grads.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
    }
    return o;
  };
  for (Mode mode : {Mode::Eval, Mode::Train}) {
    auto a = run(false, mode), b = run(true, mode);
    for (size_t t = 0; t < a.logits.size(); ++t)
      EXPECT_LT((a.logits[t] - b.logits[t]).abs().max().item<double>(), 1e-5);
    double worst = 0;
    size_t with_grad = 0;
    for (size_t i = 0; i < a.grads.size(); ++i) {
      ASSERT_EQ(a.grads[i].defined(), b.grads[i].defined());
      if (!a.grads[i].defined()) continue;
      ++with_grad;
      worst = std::max(worst, (a.grads[i] - b.grads[i]).abs().max().item<double>() /
                                  std::max(1.0, a.grads[i].abs().max().item<double>()));
    }
    if (mode == Mode::Train) EXPECT_GT(with_grad, 100u);
    EXPECT_LT(worst, 1e-5);
  }
}

namespace {
long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}
}  // namespace

TEST(Runtime, KeepFreedMemoryReusesLargeTensorsWithoutPageFaults) {
#ifdef DRIFA_SANITIZED
  GTEST_SKIP() << "AddressSanitizer replaces malloc, so glibc's mallopt settings do not apply";
#endif
  ASSERT_TRUE(keep_freed_memory());
  constexpr int64_t floats = 64 << 18;  // 64 MB, above glibc's largest default mmap threshold (32 MB)
  constexpr long pages = (floats * 4) / 4096;
  // A training loop allocates the same sizes pass after pass. glibc's bins settle after a few
  // cycles (about 11 for this size from a fresh heap); from then on the block is reused.
  auto cycle = [] {
    auto t = torch::empty({floats});
    t.fill_(2);  // touches every page
    return t[floats - 1].item<float>();
  };
  for (int i = 0; i < 24; ++i) cycle();
  const long before = minor_faults();
  constexpr int measured = 8;
  for (int i = 0; i < measured; ++i) EXPECT_EQ(cycle(), 2.0f);
  const long faults = minor_faults() - before;
  // With glibc's defaults every cycle is a fresh mmap: one fault per page, 8 x 16,384 here.
  EXPECT_LT(faults, measured * pages / 10) << faults << " page faults in " << measured << " cycles of " << pages << " pages";
}

namespace {
// One forward and backward of an MFA on a copy of x0 with upstream gradient up: the output, and
// the input's gradient followed by every parameter's.
struct MFAPass {
  torch::Tensor y;
  std::vector<torch::Tensor> grads;
};
MFAPass mfa_pass(MFA& mfa, const torch::Tensor& x0, const torch::Tensor& up) {
  mfa->zero_grad();
  auto x = x0.clone().requires_grad_(true);
  auto y = mfa(x);
  (y * up).sum().backward();
  MFAPass r{y.detach(), {x.grad().clone()}};
  for (const auto& p : mfa->parameters()) r.grads.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
  return r;
}
}  // namespace

// Recomputing MFA's maps in backward (model/recompute.h) runs the same operations on the same inputs:
// the same outputs and the same gradients for the input and every parameter, for float32
// (channels-last 1x1 convolutions: model/pointwise_layout.h) and float64.
TEST(Model, MFARecomputedInBackwardGivesTheSameGradients) {
  const bool before = attention_recompute();
  for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
    torch::manual_seed(11);
    MFA mfa(16);
    mfa->to(dtype);
    const auto x0 = torch::randn({3, 16, 9, 7}, dtype);
    const auto up = torch::randn({3, 16, 9, 7}, dtype);
    std::vector<std::vector<torch::Tensor>> grads;
    std::vector<torch::Tensor> outs;
    for (bool recompute : {false, true}) {
      set_attention_recompute(recompute);
      auto r = mfa_pass(mfa, x0, up);
      for (const auto& g : r.grads) ASSERT_TRUE(g.defined());
      outs.push_back(r.y);
      grads.push_back(r.grads);
    }
    EXPECT_TRUE(torch::equal(outs[0], outs[1]));
    ASSERT_EQ(grads[0].size(), grads[1].size());
    for (size_t i = 0; i < grads[0].size(); ++i)
      EXPECT_LE((grads[0][i] - grads[1][i]).abs().max().item<double>(), 1e-6 * std::max(1.0, grads[0][i].abs().max().item<double>()))
          << "gradient " << i << " " << dtype;
  }
  set_attention_recompute(before);
}

// Under bf16 autocast as well (precision auto may choose both): backward runs after the autocast
// scope has closed, and recomputes the maps in bf16 as the forward pass made them. Recomputed
// in fp32 instead, the gradients differ by bf16's rounding (up to 1e-2 here, against 1e-6 allowed).
TEST(Model, MFARecomputedUnderAutocastGivesTheSameGradients) {
  const bool before = attention_recompute();
  torch::manual_seed(12);
  MFA mfa(16);
  const auto x0 = torch::randn({3, 16, 9, 7});
  const auto up = torch::randn({3, 16, 9, 7});
  std::vector<std::vector<torch::Tensor>> grads;
  for (bool recompute : {false, true}) {
    set_attention_recompute(recompute);
    mfa->zero_grad();
    auto x = x0.clone().requires_grad_(true);
    torch::Tensor loss;
    {
      AutocastGuard ac(true, torch::kCPU);
      loss = (mfa(x).to(torch::kFloat32) * up).sum();
    }
    loss.backward();
    std::vector<torch::Tensor> g{x.grad().clone()};
    for (const auto& p : mfa->parameters()) g.push_back(p.grad().clone());
    grads.push_back(g);
  }
  set_attention_recompute(before);
  for (size_t i = 0; i < grads[0].size(); ++i)
    EXPECT_LE((grads[0][i] - grads[1][i]).abs().max().item<double>(), 1e-6 * std::max(1.0, grads[0][i].abs().max().item<double>()))
        << "gradient " << i;
}

// MFA's chain as one autograd node (model/mfa_chain.h) against the same arithmetic as ATen ops:
// the same pooled values bit for bit, and the same gradients for the input and all ten weights
// within float rounding; for NCHW and channels-last input, with every descriptor used or only
// some (the others' gradients undefined), and with ties: every position tied (zero weights make
// conv4's output and a2 constant over H and W: the max's gradient is shared by every position,
// conv4's dense backward) or pairs (every pixel twice: each maximum tied twice, the sparse one).
TEST(Model, MFAChainGivesThePlainArithmeticsValuesAndGradients) {
  // (the plain path's convolutions run in channels-last whatever x's layout: pointwise_layout.h)
  const auto reference = [](const torch::Tensor& xin, const std::vector<torch::Tensor>& w) {
    const auto x = xin.contiguous(at::MemoryFormat::ChannelsLast);
    const auto c = [](const torch::Tensor& t, const torch::Tensor& k, const torch::Tensor& b) { return torch::conv2d(t, k, b); };
    auto a1 = torch::sigmoid(c(x, w[0], w[1]));
    auto a2 = torch::sigmoid(c(a1, w[2], w[3]));
    auto a3 = torch::sigmoid(c(a1 + a2, w[4], w[5]));
    auto z4 = c(a3, w[6], w[7]);
    auto ac = torch::sigmoid(c(x, w[8], w[9]));
    return std::vector<torch::Tensor>{a1.mean({2, 3}), a2.amax({2, 3}), a3.mean({2, 3}), z4.amax({2, 3}), ac.mean({2, 3})};
  };
  for (const std::string ties : {"none", "all", "pairs"})
    for (bool channels_last : {false, true})
      for (bool some : {false, true}) {
        torch::manual_seed(13);
        const int64_t C = 8;
        std::vector<torch::Tensor> w0;
        for (int i = 0; i < 5; ++i) {
          w0.push_back(torch::randn({C, C, 1, 1}) * 0.5);
          w0.push_back(torch::randn({C}) * 0.1);
        }
        if (ties == "all") w0[2].zero_(), w0[6].zero_(), w0[7].zero_();
        auto x0 = ties == "pairs" ? torch::randn({3, C, 6, 5}).repeat_interleave(2, 3) : torch::randn({3, C, 6, 5});
        if (channels_last) x0 = x0.contiguous(at::MemoryFormat::ChannelsLast);
        std::vector<torch::Tensor> ups;
        for (int i = 0; i < 5; ++i) ups.push_back(torch::randn({3, C}));
        std::vector<std::vector<torch::Tensor>> grads, outs;
        for (bool chain : {false, true}) {
          auto x = x0.clone().requires_grad_(true);
          std::vector<torch::Tensor> w;
          for (const auto& t : w0) w.push_back(t.clone().requires_grad_(true));
          ASSERT_TRUE(mfa_chain_applies(x));
          std::vector<torch::Tensor> p;
          if (chain) {
            const auto q = mfa_chain(x, {w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], w[9]});
            p = {q.mean_a1, q.max_a2, q.mean_a3, q.max_z4, q.mean_c1};
          } else {
            p = reference(x, w);
          }
          auto loss = (p[0] * ups[0]).sum() + (p[4] * ups[4]).sum();
          if (!some) for (int i : {1, 2, 3}) loss = loss + (p[static_cast<size_t>(i)] * ups[static_cast<size_t>(i)]).sum();
          loss.backward();
          std::vector<torch::Tensor> g{x.grad()};
          for (const auto& t : w) g.push_back(t.grad().defined() ? t.grad() : torch::zeros_like(t));
          grads.push_back(g);
          std::vector<torch::Tensor> o;
          for (const auto& t : p) o.push_back(t.detach());
          outs.push_back(o);
        }
        const std::string where = "ties " + ties + " " + (channels_last ? "channels-last " : "NCHW ") + (some ? "some" : "all");
        for (size_t i = 0; i < 5; ++i) EXPECT_TRUE(torch::equal(outs[0][i], outs[1][i])) << where << " output " << i;
        for (size_t i = 0; i < grads[0].size(); ++i) {
          const double scale = std::max(1e-3, grads[0][i].abs().max().item<double>());
          EXPECT_LE((grads[0][i] - grads[1][i]).abs().max().item<double>(), 2e-6 * scale) << where << " gradient " << i;
        }
        {
          // without autograd the node keeps nothing and gives the same values
          torch::NoGradGuard no_grad;
          const auto q = mfa_chain(x0, {w0[0], w0[1], w0[2], w0[3], w0[4], w0[5], w0[6], w0[7], w0[8], w0[9]});
          const std::vector<torch::Tensor> p{q.mean_a1, q.max_a2, q.mean_a3, q.max_z4, q.mean_c1};
          for (size_t i = 0; i < 5; ++i) EXPECT_TRUE(torch::equal(outs[1][i], p[i])) << where << " no-grad output " << i;
        }
        if (!some) {
          // every gradient is really there (conv4's through the tied or single maxima)
          for (size_t i = 0; i < grads[1].size(); ++i) EXPECT_GT(grads[1][i].abs().max().item<double>(), 0.0) << where << " gradient " << i;
        }
      }
  AutocastGuard ac(true, torch::kCPU);
  EXPECT_FALSE(mfa_chain_applies(torch::zeros({1, 2, 3, 3})));  // under autocast: the plain path
}

// A whole MFA (and under recompute) with the chain on gives the plain path's output and gradients.
TEST(Model, MFAWithTheChainGivesThePlainPathsGradients) {
  const bool chain_before = mfa_chain(), recompute_before = attention_recompute();
  for (bool recompute : {false, true}) {
    set_attention_recompute(recompute);
    torch::manual_seed(14);
    MFA mfa(16);
    const auto x0 = torch::randn({3, 16, 9, 7});
    const auto up = torch::randn({3, 16, 9, 7});
    std::vector<std::vector<torch::Tensor>> grads;
    std::vector<torch::Tensor> outs;
    for (bool chain : {false, true}) {
      set_mfa_chain(chain);
      auto r = mfa_pass(mfa, x0, up);
      outs.push_back(r.y);
      grads.push_back(r.grads);
    }
    EXPECT_TRUE(torch::equal(outs[0], outs[1])) << "recompute " << recompute;
    for (size_t i = 0; i < grads[0].size(); ++i)
      EXPECT_LE((grads[0][i] - grads[1][i]).abs().max().item<double>(), 2e-6 * std::max(1.0, grads[0][i].abs().max().item<double>()))
          << "recompute " << recompute << " gradient " << i;
  }
  set_mfa_chain(chain_before);
  set_attention_recompute(recompute_before);
}

// The same for MIFA's local branch (two modalities of different sizes, a sample without the
// second) and for a whole network in training mode (dropout drawn alike from one seed): the
// same loss and the same gradient for every parameter with recompute on and off.
TEST(Model, AttentionRecomputedInBackwardGivesTheSameGradients) {
  const bool before = attention_recompute();
  const auto close = [](const torch::Tensor& a, const torch::Tensor& b) {
    return (a - b).abs().max().item<double>() <= 1e-5 * std::max(1.0, a.abs().max().item<double>());
  };
  {
    torch::manual_seed(5);
    MIFA mifa(12, 2);
    const std::vector<torch::Tensor> x0{torch::randn({3, 12, 8, 8}), torch::randn({3, 12, 5, 6})};
    const auto presence = torch::tensor({1.f, 1.f, 1.f, 1.f, 1.f, 0.f}).view({3, 2});
    std::vector<std::vector<torch::Tensor>> grads;
    std::vector<torch::Tensor> outs;
    for (bool recompute : {false, true}) {
      set_attention_recompute(recompute);
      mifa->zero_grad();
      std::vector<torch::Tensor> xs;
      for (const auto& x : x0) xs.push_back(x.clone().requires_grad_(true));
      const auto ys = mifa(xs, presence);
      (ys[0].square().sum() + ys[1].sin().sum()).backward();
      outs.push_back(torch::cat({ys[0].flatten(), ys[1].flatten()}).detach());
      std::vector<torch::Tensor> g{xs[0].grad().clone(), xs[1].grad().clone()};
      for (const auto& p : mifa->parameters()) {
        ASSERT_TRUE(p.grad().defined());
        g.push_back(p.grad().clone());
      }
      grads.push_back(g);
    }
    EXPECT_TRUE(torch::equal(outs[0], outs[1]));
    for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_TRUE(close(grads[0][i], grads[1][i])) << "MIFA gradient " << i;
    // the local convolutions' gradients are not zero: the recomputed branch really feeds them
    EXPECT_GT(mifa->local[0]->as<torch::nn::Conv2dImpl>()->weight.grad().abs().sum().item<double>(), 0.0);
  }
  // float64: the same arithmetic to rounding; float32 (channels-last 1x1 convolutions): the
  // gradient of x gets its terms in another order, ~1e-5 apart after the whole network
  for (auto [dtype, tol] : {std::pair{torch::kFloat64, 1e-10}, std::pair{torch::kFloat32, 1e-4}}) {
    const auto c = tiny(2, {4, 3});
    std::vector<torch::Tensor> xs;
    for (const auto& x : random_inputs(c, 4)) xs.push_back(x.to(dtype));
    std::vector<std::vector<torch::Tensor>> grads;
    std::vector<double> losses;
    for (bool recompute : {false, true}) {
      set_attention_recompute(recompute);
      torch::manual_seed(21);
      DRIFANet net(c);
      net->to(dtype);
      net->set_mode(Mode::Train);
      torch::manual_seed(22);
      const auto r = net->forward(xs);
      const auto loss = r.logits[0].log_softmax(1).select(1, 0).mean() + r.logits[1].square().mean();
      loss.backward();
      losses.push_back(loss.item<double>());
      std::vector<torch::Tensor> g;
      for (const auto& p : net->parameters())
        if (p.grad().defined()) g.push_back(p.grad().clone());
      grads.push_back(g);
    }
    EXPECT_EQ(losses[0], losses[1]) << dtype;
    ASSERT_EQ(grads[0].size(), grads[1].size());
    ASSERT_GT(grads[0].size(), 100u);
    for (size_t i = 0; i < grads[0].size(); ++i)
      EXPECT_LE((grads[0][i] - grads[1][i]).abs().max().item<double>(), tol * std::max(1.0, grads[0][i].abs().max().item<double>()))
          << dtype << " network gradient " << i << " " << grads[0][i].sizes();
  }
  set_attention_recompute(before);
}
