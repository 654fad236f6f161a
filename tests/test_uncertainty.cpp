// Monte Carlo sampling (fast path = naive loop), uncertainty and calibration measures on values
// worked out by hand, t-SNE against scikit-learn, Grad-CAM mechanics; channels-last and bf16
// autocast against the plain float32 path.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <fstream>

#include "drifa/error.h"
#include "drifa/explain/gradcam.h"
#include "drifa/explain/tsne.h"
#include "drifa/runtime/autocast.h"
#include "drifa/runtime/layout.h"
#include "drifa/inference/mc_sampler.h"
#include "drifa/uncertainty/measures.h"
#include "test_helpers.h"

using namespace drifa;

namespace {

ModelConfig tiny_config() {
  ModelConfig c;
  c.modalities = 2;
  c.classes = {3, 4};
  c.image_size = 32;
  c.widths = widths_preset("tiny");
  c.dropout = 0.25;
  return c;
}

std::vector<torch::Tensor> inputs(int64_t b, int64_t seed) {
  torch::manual_seed(seed);
  return {torch::rand({b, 3, 32, 32}), torch::rand({b, 3, 32, 32})};
}

double max_diff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, (a[i] - b[i]).abs().max().item<double>());
  return d;
}

// A numeric CSV (no header) as a [rows, cols] float64 tensor.
torch::Tensor read_matrix(const std::string& path) {
  std::ifstream in(path);
  std::vector<double> v;
  std::string line, cell;
  int64_t rows = 0;
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    while (std::getline(ss, cell, ',')) v.push_back(std::stod(cell));
    ++rows;
  }
  return torch::tensor(v, torch::kFloat64).view({rows, -1});
}

std::string oracle(const std::string& args) {
  return std::string(DRIFA_PYTHON) + " " DRIFA_SOURCE_DIR "/tests/python/tsne_oracle.py " + args;
}

std::vector<int64_t> ids(int64_t n, int64_t first = 0) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(first + i);
  return v;
}

}  // namespace

TEST(MonteCarlo, PassesDifferAndTheirMeanSettles) {
  torch::manual_seed(1);
  DRIFANet net(tiny_config());
  auto x = inputs(4, 2);
  inference::MCOptions o;
  o.passes = 400;
  auto p = inference::mc_sample(net, x, ids(4), o)[0];  // [400, 4, 3]
  ASSERT_EQ(p.sizes(), (std::vector<int64_t>{400, 4, 3}));
  EXPECT_NEAR(p.sum(2).sub(1).abs().max().item<double>(), 0.0, 1e-5);
  // single passes differ ...
  const double pass_gap = (p[0] - p[1]).abs().mean().item<double>();
  EXPECT_GT(pass_gap, 1e-4);
  // ... and the means of growing sets of passes converge: two disjoint halves of 200 agree far
  // better than two single passes, and better than two sets of 10.
  auto m = [&](int64_t a, int64_t n) { return p.narrow(0, a, n).mean(0); };
  const double gap10 = (m(0, 10) - m(10, 10)).abs().mean().item<double>();
  const double gap200 = (m(0, 200) - m(200, 200)).abs().mean().item<double>();
  EXPECT_LT(gap200, pass_gap / 5);
  EXPECT_LT(gap200, gap10);
  // and the model's mode is left as it was
  EXPECT_EQ(net->mode(), Mode::Train);
}

TEST(MonteCarlo, SharedPrefixAndGroupedPassesEqualTheNaiveLoop) {
  torch::manual_seed(3);
  DRIFANet net(tiny_config());
  // BN statistics that are not the identity, so Eval-mode BN matters
  net->set_mode(Mode::Train);
  for (int i = 0; i < 3; ++i) net->forward(inputs(8, 10 + i));
  net->set_mode(Mode::Eval);
  std::vector<torch::Tensor> stats_before;
  for (const auto& b : net->buffers()) stats_before.push_back(b.clone());
  auto x = inputs(5, 4);
  inference::MCOptions naive;
  naive.passes = 12;
  naive.seed = 77;
  naive.share_prefix = false;
  const auto ref = inference::mc_sample(net, x, ids(5), naive);
  for (int rows : {5, 20, 1000}) {  // one pass per call, four passes per call, all twelve in one call
    auto fast = naive;
    fast.share_prefix = true;
    fast.rows_per_call = rows;
    EXPECT_LT(max_diff(ref, inference::mc_sample(net, x, ids(5), fast)), 1e-5) << "rows per call " << rows;
  }
  // A sample's masks depend on its id, not on its batch: sample 3 alone equals row 3 of the batch.
  std::vector<torch::Tensor> one = {x[0].narrow(0, 3, 1), x[1].narrow(0, 3, 1)};
  auto alone = inference::mc_sample(net, one, {3}, naive);
  EXPECT_LT((alone[1].squeeze(1) - ref[1].select(1, 3)).abs().max().item<double>(), 1e-5);
  // The same seed repeats exactly; another seed draws other masks.
  EXPECT_EQ(max_diff(ref, inference::mc_sample(net, x, ids(5), naive)), 0.0);
  auto other = naive;
  other.seed = 78;
  EXPECT_GT(max_diff(ref, inference::mc_sample(net, x, ids(5), other)), 1e-4);
  // MC sampling never touches BN running statistics, and the mode is restored.
  auto after = net->buffers();
  for (size_t i = 0; i < after.size(); ++i) EXPECT_TRUE(after[i].equal(stats_before[i]));
  EXPECT_EQ(net->mode(), Mode::Eval);
}

TEST(Measures, EqualHandComputedValues) {
  // S = 2 passes, N = 2 samples, K = 2 classes
  auto s = torch::tensor({0.9, 0.1, 0.5, 0.5, 0.7, 0.3, 0.5, 0.5}, torch::kFloat64).view({2, 2, 2});
  const auto m = uncertainty::sample_measures(s);
  auto H = [](double p) { return -(p * std::log(p) + (1 - p) * std::log(1 - p)); };
  EXPECT_NEAR(m.mean[0][0].item<double>(), 0.8, 1e-7);
  EXPECT_NEAR(m.predictive_entropy[0].item<double>(), H(0.8), 1e-12);
  EXPECT_NEAR(m.predictive_entropy[0].item<double>(), 0.500402423538188, 1e-12);
  EXPECT_NEAR(m.expected_entropy[0].item<double>(), (H(0.9) + H(0.7)) / 2, 1e-12);
  EXPECT_NEAR(m.mutual_information[0].item<double>(), 0.500402423538188 - (0.325082973391448 + 0.610864302054894) / 2, 1e-12);
  EXPECT_NEAR(m.spread[0].item<double>(), 0.1, 1e-12);
  EXPECT_NEAR(m.predictive_entropy[1].item<double>(), std::log(2.0), 1e-12);
  EXPECT_NEAR(m.mutual_information[1].item<double>(), 0.0, 1e-12);
  EXPECT_EQ(m.predicted[1].item<int64_t>(), 0);  // a tie goes to the first class

  auto labels = torch::tensor({0, 1}, torch::kLong);
  EXPECT_NEAR(uncertainty::nll(labels, m.mean), (-std::log(0.8) - std::log(0.5)) / 2, 1e-7);
  EXPECT_NEAR(uncertainty::brier(labels, m.mean), (0.04 + 0.04 + 0.25 + 0.25) / 2, 1e-7);
  // sample 0: confidence 0.8 (bin 12 of 15), right; sample 1: confidence 0.5 (bin 7), wrong
  const auto rel = uncertainty::reliability(labels, m.mean, 15);
  EXPECT_EQ(rel.count[12], 1);
  EXPECT_EQ(rel.count[7], 1);
  EXPECT_NEAR(rel.accuracy[12], 1.0, 1e-12);
  EXPECT_NEAR(rel.accuracy[7], 0.0, 1e-12);
  EXPECT_NEAR(rel.ece, 0.5 * 0.2 + 0.5 * 0.5, 1e-7);

  auto correct = torch::tensor({1, 0, 1, 1}, torch::kLong);
  auto unc = torch::tensor({0.1, 0.9, 0.3, 0.2}, torch::kFloat64);
  EXPECT_DOUBLE_EQ(uncertainty::selective_accuracy(correct, unc, 0.5), 1.0);
  EXPECT_DOUBLE_EQ(uncertainty::selective_accuracy(correct, unc, 0.75), 1.0);
  EXPECT_DOUBLE_EQ(uncertainty::selective_accuracy(correct, unc, 1.0), 0.75);
  EXPECT_DOUBLE_EQ(uncertainty::aurc(correct, unc), (0 + 0 + 0 + 0.25) / 4);
  EXPECT_DOUBLE_EQ(*uncertainty::error_detection_auroc(correct, unc), 1.0);
  // an uncertainty that ranks the error as the most certain sample
  auto bad = torch::tensor({0.5, 0.0, 0.6, 0.7}, torch::kFloat64);
  EXPECT_DOUBLE_EQ(*uncertainty::error_detection_auroc(correct, bad), 0.0);
  EXPECT_DOUBLE_EQ(uncertainty::aurc(correct, bad), (1.0 + 0.5 + 1.0 / 3 + 0.25) / 4);
  EXPECT_FALSE(uncertainty::error_detection_auroc(torch::ones({4}, torch::kLong), unc).has_value());

  // the JSON summary carries the same numbers
  const auto j = uncertainty::task_summary(labels, s.to(torch::kFloat32), {"a", "b"}, {1.0, 0.5});
  EXPECT_NEAR(j["ece"].get<double>(), 0.35, 1e-6);
  EXPECT_NEAR(j["brier"].get<double>(), 0.29, 1e-6);
  EXPECT_NEAR(j["metrics"]["accuracy"].get<double>(), 0.5, 1e-12);
  EXPECT_EQ(j["passes"].get<int>(), 2);
}

TEST(TSNE, TrustworthinessEqualsScikitLearnsOnTheSameEmbedding) {
  test::TempDir dir;
  auto r = test::run(oracle("features " + (dir / "x.csv") + " 120"));
  ASSERT_EQ(r.status, 0) << r.output;
  // Digits have many tied distances, and ties may rank either way (numpy's argsort is not
  // stable); a little noise makes the ranks unique so the two must agree exactly.
  torch::manual_seed(0);
  const auto x = read_matrix(dir / "x.csv") + 1e-3 * torch::randn({120, 64}, torch::kFloat64);
  // an arbitrary embedding: a random projection
  auto y = x.mm(torch::randn({x.size(1), 2}, torch::kFloat64));
  auto save = [](const torch::Tensor& t, const std::string& path) {
    std::ofstream out(path);
    out.precision(17);
    for (int64_t i = 0; i < t.size(0); ++i)
      for (int64_t j = 0; j < t.size(1); ++j) out << t[i][j].item<double>() << (j + 1 < t.size(1) ? "," : "\n");
  };
  save(x, dir / "x.csv");
  save(y, dir / "y.csv");
  for (int k : {5, 10}) {
    auto s = test::run(oracle("trust " + (dir / "x.csv") + " " + (dir / "y.csv") + " " + std::to_string(k)));
    ASSERT_EQ(s.status, 0) << s.output;
    EXPECT_NEAR(explain::trustworthiness(x, y, k), std::stod(s.output), 1e-8) << "k = " << k;
  }
}

TEST(TSNE, ExactTSNEIsAsTrustworthyAsScikitLearns) {
  test::TempDir dir;
  auto r = test::run(oracle("features " + (dir / "x.csv") + " 300"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto x = read_matrix(dir / "x.csv");
  explain::TSNEOptions o;
  o.perplexity = 30;
  const auto res = explain::tsne(x, o);
  ASSERT_EQ(res.embedding.sizes(), (std::vector<int64_t>{300, 2}));
  EXPECT_TRUE(torch::isfinite(res.embedding).all().item<bool>());
  const double ours = explain::trustworthiness(x, res.embedding, 5);
  auto s = test::run(oracle("reference " + (dir / "x.csv") + " 30"));
  ASSERT_EQ(s.status, 0) << s.output;
  const double theirs = std::stod(s.output);
  std::cout << "[t-SNE] trustworthiness (300 digits, perplexity 30): DRIFA " << ours << ", scikit-learn " << theirs
            << "; KL " << res.kl_divergence << "\n";
  EXPECT_NEAR(ours, theirs, 0.02);
  EXPECT_GT(ours, 0.9);  // and far better than a random layout
  // PCA initialisation makes it deterministic
  EXPECT_TRUE(explain::tsne(x, o).embedding.equal(res.embedding));
  // too few samples for the perplexity is a clear error
  EXPECT_NE(test::error_message<drifa::Error>([&] { explain::tsne(x.narrow(0, 0, 20), o); }).find("perplexity"), std::string::npos);
}

TEST(GradCAM, MapsFollowTheGradientOfTheExplainedClass) {
  torch::manual_seed(5);
  auto cfg = tiny_config();
  DRIFANet net(cfg);
  net->set_mode(Mode::Eval);
  auto x = inputs(3, 6);
  explain::GradCAMOptions o;
  o.modality = 1;
  o.task = 1;
  o.stage = 3;
  const auto g = explain::grad_cam(net, x, o);
  ASSERT_EQ(g.map.sizes(), (std::vector<int64_t>{3, 32, 32}));
  // stage 3 of the tiny layout runs at 32 / 4 / 2 = 4 px
  ASSERT_EQ(g.raw.sizes(), (std::vector<int64_t>{3, 4, 4}));
  EXPECT_GE(g.map.min().item<double>(), 0.0);
  EXPECT_LE(g.map.max().item<double>(), 1.0 + 1e-6);
  // the predicted class is explained by default
  EXPECT_TRUE(g.target_class.equal(g.probs.argmax(1)));
  // by hand: the same map from the stage output and its gradient
  ForwardOptions fo;
  fo.keep_stages = true;
  auto r = net->forward(x, fo);
  auto A = r.stages[3][1];
  auto score = r.logits[1].gather(1, g.target_class.view({-1, 1})).sum();
  auto grad = torch::autograd::grad({score}, {A})[0];
  auto cam = torch::relu((grad.mean({2, 3}, true) * A).sum(1)).detach();
  EXPECT_LT((cam - g.raw).abs().max().item<double>(), 1e-6);
  // another class gives another map
  o.target_class = (g.target_class[0].item<int64_t>() + 1) % 4;
  EXPECT_FALSE(explain::grad_cam(net, x, o).raw.equal(g.raw));
  EXPECT_EQ(net->mode(), Mode::Eval);
  // bad arguments
  o.modality = 2;
  EXPECT_NE(test::error_message<drifa::Error>([&] { explain::grad_cam(net, x, o); }).find("modality 2 out of range"), std::string::npos);
}

TEST(GradCAM, LesionScoreAgainstAUniformMap) {
  auto mask = torch::zeros({10, 10});
  mask.narrow(0, 2, 3).narrow(1, 2, 3).fill_(1);  // 9 of 100 pixels
  auto map = torch::zeros({10, 10});
  map[3][3] = 1;
  map[8][8] = 1;
  const auto s = explain::lesion_score(map, mask);
  EXPECT_NEAR(s.uniform, 0.09, 1e-9);
  EXPECT_NEAR(s.energy_inside, 0.5, 1e-9);
  EXPECT_TRUE(s.pointing_hit);  // the first maximum, (3, 3), is inside
  map[8][8] = 2;
  EXPECT_FALSE(explain::lesion_score(map, mask).pointing_hit);
  EXPECT_NEAR(explain::lesion_score(torch::ones({10, 10}), mask).energy_inside, 0.09, 1e-9);
}

TEST(Layout, ChannelsLastGivesThePlainOutputsAndGradients) {
  torch::manual_seed(9);
  auto cfg = tiny_config();
  DRIFANet plain(cfg), fast(cfg);
  {
    torch::NoGradGuard ng;
    auto a = plain->parameters(), b = fast->parameters();
    for (size_t i = 0; i < a.size(); ++i) b[i].copy_(a[i]);
  }
  drifa::use_channels_last(*fast);
  for (const auto& p : fast->parameters())
    if (p.dim() == 4) EXPECT_TRUE(p.is_contiguous(at::MemoryFormat::ChannelsLast));
  auto x = inputs(6, 11);
  std::vector<torch::Tensor> xc = {drifa::to_channels_last(x[0]), drifa::to_channels_last(x[1])};
  // evaluation outputs
  plain->set_mode(Mode::Eval);
  fast->set_mode(Mode::Eval);
  auto ra = plain->forward(x), rb = fast->forward(xc);
  EXPECT_LT(max_diff(ra.logits, rb.logits), 1e-5);
  EXPECT_LT((ra.features - rb.features).abs().max().item<double>(), 1e-5);
  // a training step's gradients (BN batch statistics, no dropout masks drawn: p = 0 here)
  auto c2 = cfg;
  c2.dropout = 0;
  DRIFANet p2(c2), f2(c2);
  {
    torch::NoGradGuard ng;
    auto a = p2->parameters(), b = f2->parameters();
    for (size_t i = 0; i < a.size(); ++i) b[i].copy_(a[i]);
  }
  drifa::use_channels_last(*f2);
  p2->set_mode(Mode::Train);
  f2->set_mode(Mode::Train);
  auto la = p2->forward(x).logits[0].logsumexp(1).sum(), lb = f2->forward(xc).logits[0].logsumexp(1).sum();
  la.backward();
  lb.backward();
  auto ga = p2->parameters(), gb = f2->parameters();
  double worst = 0;
  for (size_t i = 0; i < ga.size(); ++i) {
    ASSERT_EQ(ga[i].grad().defined(), gb[i].grad().defined());
    if (!ga[i].grad().defined()) continue;  // task 1's head: not in this loss
    worst = std::max(worst, (ga[i].grad() - gb[i].grad()).abs().max().item<double>() /
                                std::max(1.0, ga[i].grad().abs().max().item<double>()));
  }
  EXPECT_LT(worst, 1e-4);
  // and Monte Carlo probabilities through the shared-prefix path
  inference::MCOptions o;
  o.passes = 5;
  EXPECT_LT(max_diff(inference::mc_sample(plain, x, ids(6), o), inference::mc_sample(fast, xc, ids(6), o)), 1e-5);
}

// bfloat16 autocast keeps 8 bits of mantissa: the stated tolerance is on probabilities, where a
// user reads the result (0.05 absolute), and the predicted classes must mostly agree.
TEST(Layout, BFloat16AutocastStaysWithinItsStatedToleranceOfFloat32) {
  torch::manual_seed(13);
  DRIFANet net(tiny_config());
  net->set_mode(Mode::Eval);
  auto x = inputs(16, 29);
  torch::NoGradGuard ng;
  auto fp32 = net->forward(x);
  ForwardResult bf16;
  {
    drifa::AutocastGuard ac(true, torch::kCPU);
    bf16 = net->forward(x);
  }
  for (size_t t = 0; t < fp32.logits.size(); ++t) {
    EXPECT_EQ(bf16.logits[t].scalar_type(), torch::kBFloat16);  // autocast really ran
    auto p32 = torch::softmax(fp32.logits[t], 1), p16 = torch::softmax(bf16.logits[t].to(torch::kFloat32), 1);
    const double worst = (p32 - p16).abs().max().item<double>();
    EXPECT_LT(worst, 0.05) << "task " << t;
    EXPECT_GT(worst, 0.0) << "bf16 and fp32 agree to the bit: autocast did not change the arithmetic";
    const auto agree = p32.argmax(1).eq(p16.argmax(1)).sum().item<int64_t>();
    EXPECT_GE(agree, 14) << "task " << t;
  }
}
