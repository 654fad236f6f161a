// Calibration (temperature scaling), conformal prediction sets, bootstrap intervals, class
// imbalance and cross-validation folds: against SciPy, numpy and scikit-learn where they have
// them, and by their statistical guarantees on simulated data.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>

#include <torch/torch.h>

#include "drifa/calibration/calibration.h"
#include "drifa/calibration/conformal.h"
#include "drifa/calibration/temperature.h"
#include "drifa/data/split.h"
#include "drifa/error.h"
#include "drifa/evaluation/bootstrap.h"
#include "drifa/evaluation/evaluator.h"
#include "drifa/data/sources.h"
#include "drifa/inference/method.h"
#include "drifa/runs/model_file.h"
#include "drifa/io/safetensors.h"
#include "drifa/runs/files.h"
#include "test_helpers.h"

using namespace drifa;

namespace {

// N samples over K classes: true labels drawn from the "true" probabilities, the model's
// probabilities an over-confident (sharpened) copy of them, S stochastic versions of it.
struct Simulated {
  torch::Tensor labels, samples;  // [N], [S, N, K]
};
Simulated simulate(int64_t S, int64_t N, int64_t K, double sharpen, uint64_t seed) {
  torch::manual_seed(static_cast<int64_t>(seed));
  auto logits = 1.5 * torch::randn({N, K}, torch::kFloat64);
  auto truth = torch::softmax(logits, 1);
  auto labels = torch::multinomial(truth, 1).squeeze(1);
  auto noise = 0.3 * torch::randn({S, N, K}, torch::kFloat64);
  if (S == 1) noise.zero_();
  auto samples = torch::softmax(sharpen * logits.unsqueeze(0) + noise, 2);
  return {labels, samples};
}

}  // namespace

TEST(Calibration, TemperatureFitsAndUndoesOverconfidence) {
  const auto sim = simulate(1, 3000, 4, 3.0, 1);
  const auto fit = calibration::fit_temperature(sim.labels, sim.samples);
  // The model's logits are 3x the true ones, so the best temperature is about 3.
  EXPECT_NEAR(fit.temperature, 3.0, 0.3);
  EXPECT_LT(fit.nll_after, fit.nll_before - 0.05);
  // Tempering the deterministic probabilities is softmax(logits / T) exactly.
  auto logits = torch::randn({5, 3}, torch::kFloat64);
  auto p = torch::softmax(logits, 1).unsqueeze(0);
  auto tempered = calibration::apply_temperature(p, 2.5).squeeze(0);
  EXPECT_TRUE(torch::allclose(tempered, torch::softmax(logits / 2.5, 1), 1e-9, 1e-12));
  // The minimum: the NLL on either side is higher.
  const double t = fit.temperature;
  EXPECT_LT(calibration::tempered_nll(sim.labels, sim.samples, t), calibration::tempered_nll(sim.labels, sim.samples, t * 1.05));
  EXPECT_LT(calibration::tempered_nll(sim.labels, sim.samples, t), calibration::tempered_nll(sim.labels, sim.samples, t / 1.05));
}

TEST(Calibration, EqualsScipyNumpyAndScikitLearn) {
  test::TempDir dir;
  io::NamedTensors ts;
  nlohmann::json got;
  // Temperatures: a deterministic model, MC samples, an under-confident model, few samples.
  const std::vector<std::tuple<int64_t, int64_t, int64_t, double>> cases = {{1, 500, 3, 2.0}, {10, 400, 5, 1.5}, {1, 300, 2, 0.5}, {20, 40, 3, 1.0}};
  got["temperatures"] = nlohmann::json::array();
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto [S, N, K, sharpen] = cases[i];
    const auto sim = simulate(S, N, K, sharpen, 10 + i);
    got["temperatures"].push_back(calibration::fit_temperature(sim.labels, sim.samples).temperature);
    ts.emplace_back("s" + std::to_string(i), sim.samples.to(torch::kFloat32).contiguous());
    ts.emplace_back("y" + std::to_string(i), sim.labels);
  }
  // Conformal sets: calibration and test probabilities, with ties (rounded probabilities).
  auto cal = simulate(1, 200, 4, 1.0, 20);
  auto test = simulate(1, 150, 4, 1.0, 21);
  auto round = [](const torch::Tensor& p) {
    auto r = torch::round(p * 20) / 20 + 1e-3;
    return (r / r.sum(1, true)).to(torch::kFloat32).to(torch::kFloat64);  // exactly what the file holds
  };
  const auto cal_p = round(cal.samples[0]), test_p = round(test.samples[0]);
  std::vector<int64_t> cal_ids(200), test_ids(150);
  for (int64_t i = 0; i < 200; ++i) cal_ids[i] = i;
  for (int64_t i = 0; i < 150; ++i) test_ids[i] = i;
  const auto cal_u = calibration::part_draws(7, calibration::Part::Calibration, cal_ids);
  const auto test_u = calibration::part_draws(7, calibration::Part::Test, test_ids);
  got["conformal"] = nlohmann::json::array();
  for (auto score : calibration::all_scores())
    for (double alpha : {0.05, 0.1, 0.2, 0.5, 0.001}) {
      const double q = calibration::conformal_threshold(calibration::true_class_scores(cal_p, cal.labels, score, cal_u), alpha);
      const auto sets = calibration::prediction_sets(test_p, score, q, test_u).to(torch::kInt);
      std::vector<std::vector<int>> rows;
      for (int64_t i = 0; i < sets.size(0); ++i) {
        rows.emplace_back();
        for (int64_t k = 0; k < sets.size(1); ++k) rows.back().push_back(sets[i][k].item<int>());
      }
      got["conformal"].push_back({{"score", calibration::score_name(score)}, {"alpha", alpha},
                                  {"threshold", std::isfinite(q) ? nlohmann::json(q) : nlohmann::json(nullptr)}, {"sets", rows}});
    }
  ts.emplace_back("cal_p", cal_p.to(torch::kFloat32).contiguous());
  ts.emplace_back("cal_y", cal.labels);
  ts.emplace_back("cal_u", torch::tensor(cal_u, torch::kFloat64));
  ts.emplace_back("test_p", test_p.to(torch::kFloat32).contiguous());
  ts.emplace_back("test_u", torch::tensor(test_u, torch::kFloat64));
  // Class weights of skewed label lists.
  got["class_weights"] = nlohmann::json::array();
  const std::vector<std::vector<int64_t>> weight_cases = {{0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, {0, 1, 2, 2, 2, 2, 1, 2}, {3, 3, 0, 1, 2, 3, 3, 3, 3, 3, 3}};
  for (size_t i = 0; i < weight_cases.size(); ++i) {
    const auto& y = weight_cases[i];
    const int64_t k = *std::max_element(y.begin(), y.end()) + 1;
    got["class_weights"].push_back(data::balanced_class_weights(y, k));
    ts.emplace_back("w_y" + std::to_string(i), torch::tensor(y, torch::kLong));
  }
  io::save_safetensors(dir / "io.safetensors", ts);
  test::write_bytes(dir / "got.json", got.dump());
  auto r = test::run(std::string(DRIFA_PYTHON) + " " + DRIFA_SOURCE_DIR + "/tests/python/calibration_oracle.py " +
                     (dir / "io.safetensors") + " " + (dir / "got.json"));
  std::cout << r.output;
  EXPECT_EQ(r.status, 0) << r.output;
}

TEST(Conformal, CoverageHoldsOverRandomSplits) {
  // Exchangeable data: a fixed pool of (probabilities, label) pairs from a miscalibrated model,
  // split at random into calibration and test parts many times.
  const int64_t N = 1500, n_cal = 300, K = 5;
  const auto sim = simulate(1, N, K, 2.0, 30);
  const auto p = sim.samples[0];
  std::mt19937_64 rng(5);
  for (double alpha : {0.1, 0.05}) {
    for (auto score : calibration::all_scores()) {
      const int R = 200;
      double sum = 0, sum_size = 0;
      int below = 0;
      for (int r = 0; r < R; ++r) {
        std::vector<int64_t> idx(N);
        std::iota(idx.begin(), idx.end(), 0);
        std::shuffle(idx.begin(), idx.end(), rng);
        auto ci = torch::tensor(std::vector<int64_t>(idx.begin(), idx.begin() + n_cal));
        auto ti = torch::tensor(std::vector<int64_t>(idx.begin() + n_cal, idx.end()));
        std::vector<int64_t> cal_ids(idx.begin(), idx.begin() + n_cal), test_ids(idx.begin() + n_cal, idx.end());
        const auto cu = calibration::uniform_draws(1000 + r, cal_ids), tu = calibration::uniform_draws(2000 + r, test_ids);
        const double q = calibration::conformal_threshold(
            calibration::true_class_scores(p.index_select(0, ci), sim.labels.index_select(0, ci), score, cu), alpha);
        const auto cov = calibration::coverage(calibration::prediction_sets(p.index_select(0, ti), score, q, tu),
                                               sim.labels.index_select(0, ti));
        sum += cov.coverage;
        sum_size += cov.mean_size;
        // One split's coverage varies about sqrt(alpha (1 - alpha) / n_cal); 3 of those is rare.
        below += cov.coverage < 1 - alpha - 3 * std::sqrt(alpha * (1 - alpha) / double(n_cal));
      }
      const double mean = sum / R;
      // E[coverage] is in [1 - alpha, 1 - alpha + 1/(n_cal + 1)]; the mean of R splits is within
      // a binomial tolerance of that (splits of one pool are correlated, so a generous one).
      const double tol = 3 * std::sqrt(alpha * (1 - alpha) / double(n_cal)) / std::sqrt(double(R) / 10);
      std::cout << calibration::score_name(score) << " alpha " << alpha << ": mean coverage " << mean << ", mean size "
                << sum_size / R << ", splits far below: " << below << "/" << R << "\n";
      EXPECT_GE(mean, 1 - alpha - tol);
      EXPECT_LE(mean, 1 - alpha + 1.0 / double(n_cal + 1) + tol);
      EXPECT_LE(below, R / 20);
      EXPECT_LT(sum_size / R, double(K));  // the sets are informative
    }
  }
}

TEST(Conformal, SetsAndThresholdsByHand) {
  // Four calibration scores: with alpha = 0.2, k = ceil(5 * 0.8) = 4 -> the largest score.
  EXPECT_DOUBLE_EQ(calibration::conformal_threshold({0.3, 0.1, 0.4, 0.2}, 0.2), 0.4);
  EXPECT_DOUBLE_EQ(calibration::conformal_threshold({0.3, 0.1, 0.4, 0.2}, 0.5), 0.3);  // ceil(2.5) = 3
  EXPECT_TRUE(std::isinf(calibration::conformal_threshold({0.3, 0.1, 0.4, 0.2}, 0.1)));  // ceil(4.5) = 5 > 4
  auto p = torch::tensor({{0.6, 0.3, 0.1}}, torch::kFloat64);
  // LAC at 0.75: classes with 1 - p <= 0.75, i.e. p >= 0.25.
  auto s = calibration::prediction_sets(p, calibration::Score::Lac, 0.75, {});
  EXPECT_TRUE(s[0][0].item<bool>() && s[0][1].item<bool>() && !s[0][2].item<bool>());
  // APS scores: 0.6, 0.9, 1.0; at 0.9 the first two classes.
  s = calibration::prediction_sets(p, calibration::Score::Aps, 0.9, {});
  EXPECT_TRUE(s[0][0].item<bool>() && s[0][1].item<bool>() && !s[0][2].item<bool>());
  // Randomised with u = 0.5: 0.3, 0.75, 0.95.
  s = calibration::prediction_sets(p, calibration::Score::ApsRandomized, 0.75, {0.5});
  EXPECT_TRUE(s[0][0].item<bool>() && s[0][1].item<bool>() && !s[0][2].item<bool>());
  const auto sc = calibration::true_class_scores(p, torch::tensor({2}), calibration::Score::ApsRandomized, {0.5});
  EXPECT_NEAR(sc[0], 0.95, 1e-12);
  const auto cov = calibration::coverage(torch::tensor({{true, true, false}, {false, false, true}}), torch::tensor({1, 0}));
  EXPECT_DOUBLE_EQ(cov.coverage, 0.5);
  EXPECT_DOUBLE_EQ(cov.mean_size, 1.5);
  EXPECT_DOUBLE_EQ(cov.class_coverage[0], 0.0);
  EXPECT_DOUBLE_EQ(cov.class_coverage[1], 1.0);
  EXPECT_TRUE(std::isnan(cov.class_coverage[2]));
  EXPECT_THROW(calibration::conformal_threshold({0.1}, 1.5), Error);
  EXPECT_THROW(calibration::parse_score("topk", "test"), Error);
}

TEST(Calibration, RecordRoundTripsAndRefusesBadValues) {
  const auto sim = simulate(5, 60, 3, 2.0, 40);
  std::vector<int64_t> ids(60);
  std::iota(ids.begin(), ids.end(), 0);
  calibration::Calibration c;
  c.models = 1;
  c.passes = 5;
  c.tasks["derm"]["mc"] = calibration::fit_method(sim.labels, sim.samples, ids, 0);
  const auto& m = c.tasks["derm"]["mc"];
  EXPECT_EQ(m.samples, 60);
  EXPECT_LT(m.nll_after, m.nll_before);
  for (const auto& v : m.scores) EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
  const auto back = calibration::Calibration::from_json(c.to_json(), "calibration.json");
  ASSERT_NE(back.find("derm", "mc"), nullptr);
  EXPECT_EQ(back.find("derm", "deterministic"), nullptr);
  EXPECT_DOUBLE_EQ(back.find("derm", "mc")->temperature, m.temperature);
  EXPECT_EQ(back.to_json(), c.to_json());
  auto bad = c.to_json();
  bad["tasks"]["derm"]["mc"]["temperature"] = 0.0;
  EXPECT_NE(test::error_message<Error>([&] { calibration::Calibration::from_json(bad, "calibration.json"); })
                .find("calibration.json: tasks.derm.mc.temperature: found 0"),
            std::string::npos);
  bad = c.to_json();
  std::swap(bad["tasks"]["derm"]["mc"]["scores"]["lac"][0], bad["tasks"]["derm"]["mc"]["scores"]["lac"][59]);
  EXPECT_NE(test::error_message<Error>([&] { calibration::Calibration::from_json(bad, "calibration.json"); }).find("out of order"),
            std::string::npos);
  bad = c.to_json();
  bad["tasks"]["derm"]["mc"]["scores"]["aps"].erase(0);
  EXPECT_THROW(calibration::Calibration::from_json(bad, "calibration.json"), Error);
  EXPECT_EQ(inference::method_for({1, 0, 0}).name(), "deterministic");
  EXPECT_EQ(inference::method_for({1, 30, 0}).name(), "mc");
  EXPECT_EQ(inference::method_for({5, 0, 0}).name(), "ensemble_deterministic");
  EXPECT_EQ(inference::method_for({5, 30, 0}).name(), "ensemble");
}

TEST(Bootstrap, IntervalsCoverThePopulationValueAtAboutTheNominalRate) {
  // Population: a 3-class problem whose classifier is right with probability 0.8 for class 0,
  // 0.6 for class 1 and 0.7 for class 2, class shares 0.5, 0.3, 0.2. Accuracy 0.72, balanced 0.7.
  const double share[3] = {0.5, 0.3, 0.2}, right[3] = {0.8, 0.6, 0.7};
  const double acc = 0.5 * 0.8 + 0.3 * 0.6 + 0.2 * 0.7, bal = (0.8 + 0.6 + 0.7) / 3;
  std::mt19937_64 rng(11);
  const int R = 200, n = 300;
  int cover_acc = 0, cover_bal = 0;
  evaluation::BootstrapOptions o;
  o.resamples = 400;
  for (int r = 0; r < R; ++r) {
    // Class counts fixed at the population shares: the stratified scheme's own assumption.
    std::vector<int64_t> y;
    std::vector<float> p;
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < int(share[c] * n); ++i) {
        y.push_back(c);
        const bool ok = std::bernoulli_distribution(right[c])(rng);
        const int pred = ok ? c : (c + 1 + int(std::bernoulli_distribution(0.5)(rng))) % 3;
        for (int k = 0; k < 3; ++k) p.push_back(k == pred ? 0.8f : 0.1f);
      }
    o.seed = static_cast<uint64_t>(r);
    const auto ci = evaluation::bootstrap_intervals(torch::tensor(y), torch::tensor(p).view({-1, 3}), o);
    for (const auto& [name, iv] : ci) {
      EXPECT_LE(iv.low, iv.high);
      if (name == "accuracy") cover_acc += iv.low <= acc && acc <= iv.high;
      if (name == "balanced_accuracy") cover_bal += iv.low <= bal && bal <= iv.high;
    }
  }
  std::cout << "95% intervals covered accuracy in " << cover_acc << "/" << R << ", balanced accuracy in " << cover_bal << "/" << R
            << "\n";
  // Binomial(200, 0.95): mean 190, sd 3.1; percentile intervals run a little narrow at n = 300.
  EXPECT_GE(cover_acc, 175);
  EXPECT_LE(cover_acc, 200);
  EXPECT_GE(cover_bal, 175);
}

TEST(Bootstrap, PointMetricsAgreeAndSeedsRepeat) {
  torch::manual_seed(2);
  auto y = torch::randint(3, {120}, torch::kLong);
  auto p = torch::softmax(torch::randn({120, 3}) + 2 * torch::one_hot(y, 3).to(torch::kFloat), 1);
  const auto m = evaluation::compute_metrics(y, p);
  const auto pt = evaluation::point_metrics(y, p);
  EXPECT_NEAR(pt[0], m.accuracy, 1e-12);
  EXPECT_NEAR(pt[1], m.balanced_accuracy, 1e-12);
  EXPECT_NEAR(pt[2], m.macro_f1, 1e-12);
  EXPECT_NEAR(pt[3], *m.roc_auc_macro, 1e-12);
  evaluation::BootstrapOptions o;
  o.resamples = 300;
  o.seed = 4;
  const auto a = evaluation::bootstrap_intervals(y, p, o), b = evaluation::bootstrap_intervals(y, p, o);
  ASSERT_EQ(a.size(), 5u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].second.low, b[i].second.low);
    EXPECT_LE(a[i].second.low, pt[i] + 1e-9);
    EXPECT_GE(a[i].second.high, pt[i] - 1e-9);
  }
  EXPECT_DOUBLE_EQ(evaluation::quantile_sorted({1, 2, 3, 4}, 0.5), 2.5);
}

TEST(Imbalance, BalancedOrderFoldsAndWeightedLoss) {
  // 90 of class 0, 9 of class 1, 1 of class 2 (and two unlabelled).
  std::vector<int64_t> y(90, 0);
  y.insert(y.end(), 9, 1);
  y.push_back(2);
  y.push_back(-1);
  y.push_back(-1);
  const auto order = data::balanced_order(y, 99, 3);
  ASSERT_EQ(order.size(), 99u);
  std::map<int64_t, int> count;
  for (auto i : order) count[y[i]]++;
  EXPECT_EQ(count[0], 33);
  EXPECT_EQ(count[1], 33);
  EXPECT_EQ(count[2], 33);
  EXPECT_EQ(count.count(-1), 0u);
  EXPECT_EQ(order, data::balanced_order(y, 99, 3));
  EXPECT_NE(order, data::balanced_order(y, 99, 4));
  // Class 1's 9 members each drawn 3 or 4 times (shuffled passes, not independent draws).
  std::map<size_t, int> times;
  for (auto i : order)
    if (y[i] == 1) times[i]++;
  for (const auto& [i, n] : times) EXPECT_TRUE(n == 3 || n == 4) << i;

  // Stratified folds: a partition, class counts per fold differ by at most one, seeded.
  std::vector<int64_t> z;
  for (int c = 0; c < 4; ++c) z.insert(z.end(), 10 + 7 * c, c);
  const auto f = data::stratified_folds(z, 5, 9);
  EXPECT_EQ(f, data::stratified_folds(z, 5, 9));
  std::map<std::pair<int64_t, int>, int> per;
  std::vector<int> sizes(5, 0);
  for (size_t i = 0; i < z.size(); ++i) {
    ASSERT_GE(f[i], 0);
    ASSERT_LT(f[i], 5);
    per[{z[i], f[i]}]++;
    sizes[f[i]]++;
  }
  for (int c = 0; c < 4; ++c) {
    int lo = 1 << 30, hi = 0;
    for (int k = 0; k < 5; ++k) {
      lo = std::min(lo, per[{c, k}]);
      hi = std::max(hi, per[{c, k}]);
    }
    EXPECT_LE(hi - lo, 1) << "class " << c;
  }
  EXPECT_LE(*std::max_element(sizes.begin(), sizes.end()) - *std::min_element(sizes.begin(), sizes.end()), 1);

  // The weighted loss is sum_i w_{y_i} CE_i / sum_i w_{y_i}.
  auto logits = torch::randn({6, 3});
  auto labels = torch::tensor({0, 0, 0, 1, 2, -1});
  auto w = torch::tensor({0.5f, 2.0f, 4.0f});
  const double got = evaluation::multitask_loss({logits}, {labels}, {1.0}, {w}).item<double>();
  auto ce = -torch::log_softmax(logits, 1);
  double num = 0, den = 0;
  for (int i = 0; i < 5; ++i) {
    const auto yi = labels[i].item<int64_t>();
    num += w[yi].item<double>() * ce[i][yi].item<double>();
    den += w[yi].item<double>();
  }
  EXPECT_NEAR(got, num / den, 1e-5);
}

TEST(CalibrationCli, CalibrateEvaluateUqPredictAndCrossValidate) {
  test::TempDir dir;
  const auto cfg = test::make_run_config(dir, "epochs = 3\nclass_weights = \"balanced\"\nsampling = \"balanced\"\n", 8, 32);
  const std::string run = dir / "run", cli = test::cli();
  auto r = test::run(cli + " train -q -c " + cfg + " -o " + run);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto config = test::read_json(run + "/config.json");
  EXPECT_EQ(config["train"]["class_weights"], "balanced");
  EXPECT_EQ(config["train"]["sampling"], "balanced");
  const auto raw = test::read_json(run + "/metrics.json");
  EXPECT_FALSE(raw["calibrated"].get<bool>());
  for (const char* key : {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc_macro", "ece"})
    EXPECT_TRUE(raw["tasks"]["derm"]["intervals"].contains(key)) << key;

  // calibrate: calibration.json and the model file's metadata
  r = test::run(cli + " calibrate " + run + " -T 4");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("NLL before>after"), std::string::npos) << r.output;
  const auto cal = runs::files::read_calibration(run);
  ASSERT_TRUE(cal.has_value());
  EXPECT_EQ(cal->passes, 4);
  for (const char* task : {"derm", "mri"})
    for (const char* method : {"deterministic", "mc"}) {
      const auto* m = cal->find(task, method);
      ASSERT_NE(m, nullptr) << task << " " << method;
      EXPECT_EQ(m->samples, 6);  // 20% of 24 training images per modality
      EXPECT_LE(m->nll_after, m->nll_before + 1e-9);
    }
  const auto meta = runs::load_model(run + "/best.safetensors").metadata;
  const auto own = runs::files::read_model_calibration(meta, "best.safetensors");
  ASSERT_TRUE(own.has_value());
  EXPECT_DOUBLE_EQ(own->find("derm", "deterministic")->temperature, cal->find("derm", "deterministic")->temperature);

  // evaluate applies the deterministic temperature; --no-calibration does not
  r = test::run(cli + " evaluate " + run + " --out " + (dir / "eval_cal") + " --resamples 200");
  ASSERT_EQ(r.status, 0) << r.output;
  r = test::run(cli + " evaluate " + run + " --no-calibration --out " + (dir / "eval_raw") + " --resamples 200");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto mc = test::read_json(dir / "eval_cal/metrics.json"), mr = test::read_json(dir / "eval_raw/metrics.json");
  EXPECT_TRUE(mc["calibrated"].get<bool>());
  EXPECT_FALSE(mr["calibrated"].get<bool>());
  const double temp = cal->find("derm", "deterministic")->temperature;
  EXPECT_DOUBLE_EQ(mc["tasks"]["derm"]["temperature"].get<double>(), temp);
  EXPECT_DOUBLE_EQ(mc["tasks"]["derm"]["accuracy"].get<double>(), mr["tasks"]["derm"]["accuracy"].get<double>());
  if (std::abs(temp - 1) > 1e-3) EXPECT_NE(mc["tasks"]["derm"]["loss"].get<double>(), mr["tasks"]["derm"]["loss"].get<double>());
  EXPECT_EQ(mc["tasks"]["derm"]["intervals"]["resamples"], 200);

  // uq: calibrated summaries, the raw ones beside them, conformal coverage per alpha and score
  r = test::run(cli + " uq " + run + " -T 4 --alpha 0.1,0.2 --resamples 100");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("conformal sets"), std::string::npos) << r.output;
  const auto uq = test::read_json(run + "/uq/uq.json");
  const auto& s = uq["tasks"]["derm"]["mc"];
  EXPECT_DOUBLE_EQ(s["temperature"].get<double>(), cal->find("derm", "mc")->temperature);
  EXPECT_TRUE(s["before_calibration"].contains("ece"));
  for (const char* a : {"0.1", "0.2"})
    for (const char* score : {"lac", "aps", "aps_randomized"}) {
      const auto& c = s["conformal"][a][score];
      EXPECT_EQ(c["samples"], 12);
      EXPECT_GE(c["coverage"].get<double>(), 0.0);
      EXPECT_LE(c["coverage"].get<double>(), 1.0);
      EXPECT_GE(c["mean_size"].get<double>(), 0.0);
      EXPECT_LE(c["mean_size"].get<double>(), 3.0);
      EXPECT_EQ(c["per_class"].size(), 3u);
    }
  EXPECT_NO_THROW(runs::files::read_uq(run));

  // predict: a prediction set from the calibration, none without it
  const auto img = [&](const char* mod) {
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir / (std::string("data/") + mod + "/test")))
      if (e.is_regular_file()) return e.path().string();
    return std::string();
  };
  r = test::run(cli + " predict " + run + " -T 4 --alpha 0.2 -i " + img("derm") + " " + img("mri") + " -o " + (dir / "p.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto p = test::read_json(dir / "p.json");
  EXPECT_TRUE(p["calibrated"].get<bool>());
  const auto& set = p["cases"][0]["tasks"]["derm"]["prediction_set"];
  EXPECT_DOUBLE_EQ(set["alpha"].get<double>(), 0.2);
  EXPECT_EQ(set["score"], "lac");
  EXPECT_LE(set["classes"].size(), 3u);
  r = test::run(cli + " predict " + (run + "/best.safetensors") + " -T 0 --no-calibration -i " + img("derm") + " " + img("mri"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(nlohmann::json::parse(r.output)["cases"][0]["tasks"]["derm"]["prediction_set"].is_null());

  // cv: two folds over the 24 + 6 training and validation images of each modality
  const std::string cv = dir / "cv";
  r = test::run(cli + " cv -q -c " + cfg + " -o " + cv + " -k 2 --epochs 1 --resamples 100");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = test::read_json(cv + "/cv_metrics.json");
  EXPECT_EQ(j["folds"], 2);
  for (const char* task : {"derm", "mri"}) {
    const auto& t = j["tasks"][task];
    ASSERT_EQ(t["folds"].size(), 2u);
    EXPECT_EQ(t["folds"][0]["samples"].get<int>() + t["folds"][1]["samples"].get<int>(), 24);
    EXPECT_EQ(t["pooled"]["samples"], 24);
    EXPECT_TRUE(t["pooled"]["intervals"].contains("accuracy"));
    EXPECT_EQ(t["holdout"]["each_fold"].size(), 2u);
    EXPECT_EQ(t["holdout"]["average"]["samples"], 12);
    const double a0 = t["folds"][0]["accuracy"], a1 = t["folds"][1]["accuracy"];
    EXPECT_NEAR(t["mean_sd"]["accuracy"]["mean"].get<double>(), (a0 + a1) / 2, 1e-12);
    EXPECT_NEAR(t["mean_sd"]["accuracy"]["sd"].get<double>(), std::abs(a0 - a1) / std::sqrt(2.0), 1e-12);
  }
  // out-of-fold: every pooled training/validation image scored exactly once per task
  const auto csv = test::read_bytes(cv + "/predictions.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 24 + 24);
  const auto f0 = data::PreparedData::from_json(test::read_json(cv + "/fold-0/split.json"), "fold-0");
  const auto f1 = data::PreparedData::from_json(test::read_json(cv + "/fold-1/split.json"), "fold-1");
  std::set<std::string> oof;
  for (const auto* f : {&f0, &f1})
    for (const auto& rec : f->test[0].records) EXPECT_TRUE(oof.insert(rec.path).second) << rec.path;
  EXPECT_EQ(oof.size(), 24u);
  for (const auto& rec : f0.train[0].records)
    for (const auto& t : f0.test[0].records) EXPECT_NE(rec.path, t.path);
  // The report understands a cv folder; a run's report shows the calibrated study and the sets.
  r = test::run(cli + " report -q " + cv);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto html = test::read_bytes(cv + "/report.html");
  EXPECT_NE(html.find("Cross-validation"), std::string::npos);
  EXPECT_NE(html.find("pooled out-of-fold"), std::string::npos);
  r = test::run(cli + " report -q " + run);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto run_html = test::read_bytes(run + "/report.html");
  EXPECT_NE(run_html.find("Conformal prediction sets"), std::string::npos);
  EXPECT_NE(run_html.find("balanced accuracy"), std::string::npos);
  EXPECT_NE(run_html.find("raw → calibrated"), std::string::npos);
  // Resumable: a second run trains nothing; another fold count is refused.
  r = test::run(cli + " cv -c " + cfg + " -o " + cv + " -k 2 --epochs 1 --resamples 100");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("already trained"), std::string::npos) << r.output;
  r = test::run(cli + " cv -q -c " + cfg + " -o " + cv + " -k 3 --epochs 1");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("another configuration or fold count"), std::string::npos) << r.output;
}
