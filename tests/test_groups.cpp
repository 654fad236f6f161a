// Patients, not images: groups from every source, grouped splits and folds, leaks refused,
// the cluster bootstrap's coverage, one conformal score per group, group-level predictions.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "drifa/calibration/calibration.h"
#include "drifa/data/check.h"
#include "drifa/data/dataset.h"
#include "drifa/data/sources.h"
#include "drifa/data/split.h"
#include "drifa/error.h"
#include "drifa/evaluation/aggregate.h"
#include "drifa/evaluation/bootstrap.h"
#include "drifa/evaluation/evaluator.h"
#include "drifa/io/settings.h"
#include "drifa/runs/files.h"
#include "test_helpers.h"

using namespace drifa;
using namespace drifa::data;
namespace fs = std::filesystem;

namespace {

std::string error_of(const std::function<void()>& f) { return test::error_message<Error>(f); }

// A distinct image per (class, group, view): a few pixels differ, so no two are equal.
cv::Mat distinct_image(int a, int b, int c) {
  cv::Mat m(12, 12, CV_8UC3, cv::Scalar(40, 80, 120));
  m.at<cv::Vec3b>(a % 12, b % 12) = cv::Vec3b(static_cast<uchar>(a * 7), static_cast<uchar>(b * 11), static_cast<uchar>(c * 13 + 1));
  m.at<cv::Vec3b>(11 - c % 12, a % 12) = cv::Vec3b(static_cast<uchar>(c * 17), 3, static_cast<uchar>(b + 1));
  return m;
}

// A skewed data set: class k has groups_per_class[k] groups of 1..6 items each (seeded).
struct Skewed {
  std::vector<int64_t> labels;
  std::vector<std::string> groups;
};
Skewed skewed(const std::vector<int>& groups_per_class, uint64_t seed, double mixed_share = 0.0) {
  Skewed s;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> size(1, 6);
  std::uniform_real_distribution<double> u(0, 1);
  for (size_t k = 0; k < groups_per_class.size(); ++k)
    for (int g = 0; g < groups_per_class[k]; ++g) {
      const int n = size(rng);
      const bool mixed = u(rng) < mixed_share;
      for (int i = 0; i < n; ++i) {
        // A mixed group carries one image of the next class (a follow-up visit with another finding).
        s.labels.push_back(mixed && i == n - 1 && n > 2 ? static_cast<int64_t>((k + 1) % groups_per_class.size())
                                                         : static_cast<int64_t>(k));
        s.groups.push_back("c" + std::to_string(k) + "g" + std::to_string(g));
      }
    }
  return s;
}

std::map<int64_t, double> class_share(const std::vector<int64_t>& labels, const std::vector<size_t>& idx) {
  std::map<int64_t, double> out;
  for (auto i : idx) out[labels[i]] += 1.0 / double(idx.size());
  return out;
}

}  // namespace

TEST(Groups, GroupedSplitKeepsEveryGroupInOnePartAndStratifies) {
  const auto s = skewed({300, 60, 25}, 3, 0.1);
  const auto [keep, held] = stratified_group_split(s.labels, s.groups, 0.2, 11);
  EXPECT_EQ(keep.size() + held.size(), s.labels.size());
  std::set<std::string> kept_groups, held_groups;
  for (auto i : keep) kept_groups.insert(s.groups[i]);
  for (auto i : held) held_groups.insert(s.groups[i]);
  for (const auto& g : held_groups) EXPECT_EQ(kept_groups.count(g), 0u) << "group " << g << " in both parts";
  // Each label's share of images held out is near the fraction (groups are whole, so not exact).
  std::map<int64_t, double> all, out;
  for (auto y : s.labels) all[y] += 1;
  for (auto i : held) out[s.labels[i]] += 1;
  for (const auto& [y, n] : all) EXPECT_NEAR(out[y] / n, 0.2, 0.06) << "label " << y;
  EXPECT_EQ(stratified_group_split(s.labels, s.groups, 0.2, 11), stratified_group_split(s.labels, s.groups, 0.2, 11));
  EXPECT_NE(stratified_group_split(s.labels, s.groups, 0.2, 11).second, stratified_group_split(s.labels, s.groups, 0.2, 12).second);
  // Mixed groups are counted and placed by their majority label.
  const auto gi = index_groups(s.labels, s.groups);
  EXPECT_GT(gi.mixed, 0u);
  EXPECT_EQ(gi.members.size(), 385u);
}

TEST(Groups, GroupedFoldsHaveStratifiedGroupKFoldsProperties) {
  // scikit-learn's StratifiedGroupKFold: every group in exactly one fold, each fold's class
  // proportions close to the whole set's, folds of similar size. A skewed set (12:3:1).
  const auto s = skewed({240, 60, 20}, 5);
  const int k = 5;
  const auto fold = stratified_group_folds(s.labels, s.groups, k, 9);
  ASSERT_EQ(fold.size(), s.labels.size());
  std::map<std::string, std::set<int>> folds_of;
  for (size_t i = 0; i < fold.size(); ++i) {
    ASSERT_GE(fold[i], 0);
    ASSERT_LT(fold[i], k);
    folds_of[s.groups[i]].insert(fold[i]);
  }
  for (const auto& [g, f] : folds_of) EXPECT_EQ(f.size(), 1u) << "group " << g << " split between folds";
  std::vector<size_t> all(s.labels.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  const auto overall = class_share(s.labels, all);
  for (int f = 0; f < k; ++f) {
    std::vector<size_t> idx;
    for (size_t i = 0; i < fold.size(); ++i)
      if (fold[i] == f) idx.push_back(i);
    EXPECT_NEAR(double(idx.size()) / double(all.size()), 1.0 / k, 0.05) << "fold " << f;
    const auto share = class_share(s.labels, idx);
    for (const auto& [y, p] : overall) EXPECT_NEAR(share.count(y) ? share.at(y) : 0.0, p, 0.04) << "fold " << f << " label " << y;
  }
  EXPECT_EQ(stratified_group_folds(s.labels, s.groups, k, 9), fold);
  // More folds than groups: an error naming the setting.
  const std::vector<int64_t> y = {0, 0, 1, 1, 0, 1};
  const std::vector<std::string> g = {"a", "a", "b", "b", "c", "c"};
  const auto msg = error_of([&] { stratified_group_folds(y, g, 4, 0); });
  EXPECT_NE(msg.find("--folds: found 4 folds for 3 groups"), std::string::npos) << msg;
}

TEST(Groups, GroupedFoldsBalanceClassesAsWellAsScikitLearn) {
  // The same skewed set through scikit-learn's StratifiedGroupKFold: both keep groups whole, and
  // DRIFA's worst fold-vs-whole class-share gap is within 0.01 of scikit-learn's.
  const auto s = skewed({240, 60, 20}, 7, 0.05);
  const auto fold = stratified_group_folds(s.labels, s.groups, 5, 1);
  test::TempDir dir;
  std::string csv;
  for (size_t i = 0; i < fold.size(); ++i) csv += std::to_string(s.labels[i]) + "," + s.groups[i] + "," + std::to_string(fold[i]) + "\n";
  test::write_bytes(dir / "items.csv", csv);
  const auto r = test::run(std::string(DRIFA_PYTHON) + " " + DRIFA_SOURCE_DIR + "/tests/python/group_folds_oracle.py " + (dir / "items.csv") +
                           " 5 0");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  std::cout << "worst class-share gap over 5 folds: DRIFA " << j["drifa"]["worst_gap"] << ", scikit-learn " << j["sklearn"]["worst_gap"] << "\n";
  EXPECT_TRUE(j["sklearn"]["grouped"].get<bool>());
  EXPECT_TRUE(j["drifa"]["grouped"].get<bool>());
  EXPECT_LE(j["drifa"]["worst_gap"].get<double>(), j["sklearn"]["worst_gap"].get<double>() + 0.01);
}

TEST(Groups, EveryImageItsOwnGroupGivesTheImageLevelBootstrap) {
  torch::manual_seed(0);
  const auto y = torch::randint(0, 3, {80}, torch::kLong);
  const auto p = torch::softmax(torch::randn({80, 3}), 1);
  evaluation::BootstrapOptions o;
  o.resamples = 300;
  o.seed = 4;
  std::vector<std::string> own(80);  // "" = its own group
  const auto a = evaluation::bootstrap_intervals(y, p, o), b = evaluation::bootstrap_intervals(y, p, o, own);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].second.low, b[i].second.low) << a[i].first;
    EXPECT_EQ(a[i].second.high, b[i].second.high) << a[i].first;
  }
  EXPECT_FALSE(evaluation::clustered(y, own));
}

TEST(Groups, ClusterBootstrapCoversWhereTheImageBootstrapUnderCovers) {
  // Clustered data: 60 groups of 5 images, half of each class; whether an image is classified
  // correctly is Bernoulli(0.8) with correlation 0.5 between two images of one group (each image
  // takes its group's shared draw with probability sqrt(0.5), else its own). The true accuracy is
  // 0.8; a 95% interval should hold it in about 95% of replicates.
  const int R = 300, G = 60, m = 5;
  const double p = 0.8, share = std::sqrt(0.5);
  std::mt19937_64 rng(2026);
  std::bernoulli_distribution correct(p), shared(share);
  int cover_image = 0, cover_cluster = 0;
  evaluation::BootstrapOptions o;
  o.resamples = 400;
  for (int r = 0; r < R; ++r) {
    std::vector<int64_t> y;
    std::vector<std::string> groups;
    std::vector<float> probs;
    for (int g = 0; g < G; ++g) {
      const bool group_draw = correct(rng);
      const int64_t label = g % 2;
      for (int i = 0; i < m; ++i) {
        const bool ok = shared(rng) ? group_draw : correct(rng);
        y.push_back(label);
        groups.push_back(std::to_string(g));
        const int64_t predicted = ok ? label : 1 - label;
        probs.push_back(predicted == 0 ? 0.7f : 0.3f);
        probs.push_back(predicted == 1 ? 0.7f : 0.3f);
      }
    }
    const auto yt = torch::tensor(y, torch::kLong);
    const auto pt = torch::tensor(probs).reshape({G * m, 2});
    o.seed = static_cast<uint64_t>(r);
    auto acc = [](const evaluation::Intervals& iv) {
      for (const auto& [name, v] : iv)
        if (name == "accuracy") return v;
      return evaluation::Interval{};
    };
    const auto a = acc(evaluation::bootstrap_intervals(yt, pt, o));
    const auto c = acc(evaluation::bootstrap_intervals(yt, pt, o, groups));
    cover_image += a.low <= p && p <= a.high;
    cover_cluster += c.low <= p && p <= c.high;
  }
  const double rate_image = double(cover_image) / R, rate_cluster = double(cover_cluster) / R;
  std::cout << "95% intervals of accuracy held the true value in " << rate_image << " (image bootstrap) and " << rate_cluster
            << " (cluster bootstrap) of " << R << " replicates\n";
  EXPECT_LT(rate_image, 0.85);  // the design effect 1 + (5 - 1) * 0.5 = 3 makes it too narrow by about sqrt(3)
  EXPECT_GT(rate_cluster, 0.89);
  EXPECT_LT(rate_cluster, 0.99);
}

TEST(Groups, AggregationGivesOnePredictionPerGroup) {
  const auto y = torch::tensor(std::vector<int64_t>{0, 0, 1, -1, 1, 1}, torch::kLong);
  const auto p = torch::tensor(std::vector<float>{0.9f, 0.1f, 0.3f, 0.7f, 0.2f, 0.8f, 0.5f, 0.5f, 0.4f, 0.6f, 0.1f, 0.9f}).reshape({6, 2});
  const std::vector<std::string> g = {"a", "a", "a", "a", "b", ""};
  const auto mean = evaluation::aggregate_groups(y, p, g, "mean");
  ASSERT_EQ(mean.groups, (std::vector<std::string>{"a", "b", "#5"}));  // the unlabelled row is left out
  EXPECT_EQ(mean.images, (std::vector<int64_t>{3, 1, 1}));
  EXPECT_EQ(mean.labels[0].item<int64_t>(), 0);  // majority of 0, 0, 1
  EXPECT_EQ(mean.mixed, 1);
  EXPECT_NEAR(mean.probs[0][0].item<float>(), (0.9 + 0.3 + 0.2) / 3, 1e-6);
  const auto mx = evaluation::aggregate_groups(y, p, g, "max");
  EXPECT_NEAR(mx.probs[0][1].item<float>(), 0.8 / (0.9 + 0.8), 1e-6);
  EXPECT_NEAR(mx.probs[0].sum().item<float>(), 1.0, 1e-6);
  // Samples [S, N, K] aggregate per sample.
  const auto s = evaluation::aggregate_groups(y, torch::stack({p, p}), g, "mean");
  EXPECT_EQ(s.probs.sizes().vec(), (std::vector<int64_t>{2, 3, 2}));
  EXPECT_NE(error_of([&] { evaluation::aggregate_groups(y, p, g, "median"); }).find("allowed mean or max"), std::string::npos);
}

TEST(Groups, MetricsJsonHasGroupLevelRowsAndClusterIntervals) {
  torch::manual_seed(1);
  const int64_t N = 40;
  const auto y = torch::arange(N, torch::kLong).floor_divide(4).remainder(2);  // groups of 4, one label each
  const auto p = torch::softmax(torch::randn({N, 2}), 1);
  std::vector<std::string> g;
  for (int64_t i = 0; i < N; ++i) g.push_back("patient" + std::to_string(i / 4));
  evaluation::BootstrapOptions o;
  o.resamples = 200;
  const auto j = evaluation::task_metrics_json(evaluation::compute_metrics(y, p), y, p, {"no", "yes"}, o, g, "mean");
  EXPECT_EQ(j["intervals"]["groups"], 10);
  EXPECT_NE(j["intervals"]["scheme"].get<std::string>().find("cluster"), std::string::npos);
  ASSERT_TRUE(j.contains("group_level"));
  EXPECT_EQ(j["group_level"]["samples"], 10);
  EXPECT_EQ(j["group_level"]["groups"], 10);
  const auto agg = evaluation::aggregate_groups(y, p, g, "mean");
  EXPECT_NEAR(j["group_level"]["accuracy"].get<double>(), evaluation::compute_metrics(agg.labels, agg.probs).accuracy, 1e-12);
  // No groups: neither.
  const auto plain = evaluation::task_metrics_json(evaluation::compute_metrics(y, p), y, p, {"no", "yes"}, o);
  EXPECT_FALSE(plain.contains("group_level"));
  EXPECT_FALSE(plain["intervals"].contains("groups"));
}

TEST(Groups, ConformalScoresComeOnePerValidationGroup) {
  torch::manual_seed(2);
  const int64_t N = 30;
  const auto y = torch::randint(0, 3, {N}, torch::kLong);
  const auto samples = torch::softmax(torch::randn({1, N, 3}), 2);
  std::vector<int64_t> ids(N);
  for (int64_t i = 0; i < N; ++i) ids[i] = i;
  std::vector<std::string> g;
  for (int64_t i = 0; i < N; ++i) g.push_back("p" + std::to_string(i / 3));
  const auto by_image = calibration::fit_method(y, samples, ids, 0);
  const auto by_group = calibration::fit_method(y, samples, ids, 0, g);
  EXPECT_EQ(by_image.samples, N);
  EXPECT_EQ(by_image.groups, 0);
  EXPECT_EQ(by_group.samples, 10);
  EXPECT_EQ(by_group.groups, 10);
  EXPECT_EQ(by_group.temperature, by_image.temperature);  // the temperature uses every image
  // Each group's score is one of its images' scores.
  for (size_t s = 0; s < by_group.scores.size(); ++s) {
    ASSERT_EQ(by_group.scores[s].size(), 10u);
    for (double v : by_group.scores[s])
      EXPECT_NE(std::find(by_image.scores[s].begin(), by_image.scores[s].end(), v), by_image.scores[s].end());
  }
  // It survives calibration.json's reader.
  calibration::Calibration c;
  c.tasks["t"]["deterministic"] = by_group;
  const auto back = calibration::Calibration::from_json(c.to_json(), "calibration.json");
  EXPECT_EQ(back.find("t", "deterministic")->groups, 10);
}

TEST(Groups, SourcesNameGroupsByColumnPatternOrFolder) {
  test::TempDir dir;
  fs::create_directories(dir.path() / "images");
  std::string csv = "image_id,dx,lesion_id\n";
  for (int i = 0; i < 6; ++i) {
    const auto id = "ISIC_000" + std::to_string(i);
    cv::imwrite(dir / ("images/" + id + ".png"), distinct_image(i, 1, 2));
    csv += id + "," + (i % 2 ? "mel" : "nv") + ",HAM_" + std::to_string(i / 2) + "\n";
  }
  test::write_bytes(dir / "meta.csv", csv);
  ManifestSpec spec;
  spec.csv = dir / "meta.csv";
  spec.path_column = "image_id";
  spec.label_column = "dx";
  spec.path_template = "images/{}.png";
  auto plain = load_manifest(spec, "skin");
  EXPECT_EQ(plain.records[0].group, plain.records[0].path);  // no grouping: each image its own
  spec.groups.column = "lesion_id";
  auto s = load_manifest(spec, "skin");
  EXPECT_EQ(s.records[0].group, "HAM_0");
  EXPECT_EQ(s.records[1].group, "HAM_0");
  EXPECT_EQ(s.records[5].group, "HAM_2");
  spec.groups.column = "patient";
  EXPECT_NE(error_of([&] { load_manifest(spec, "skin"); }).find("patient"), std::string::npos);
  test::write_bytes(dir / "meta2.csv", "image_id,dx,lesion_id\nISIC_0000,nv,\nISIC_0001,mel,HAM_1\n");
  spec.csv = dir / "meta2.csv";
  spec.groups.column = "lesion_id";
  auto msg = error_of([&] { load_manifest(spec, "skin"); });
  EXPECT_NE(msg.find("meta2.csv row 2: empty group in column lesion_id"), std::string::npos) << msg;
  // A pattern over the file name: its first capture.
  spec.csv = dir / "meta.csv";
  spec.groups = {};
  spec.groups.pattern = "ISIC_000([0-9])";
  EXPECT_EQ(load_manifest(spec, "skin").records[3].group, "3");
  spec.groups.pattern = "^slice_";
  msg = error_of([&] { load_manifest(spec, "skin"); });
  EXPECT_NE(msg.find("group_pattern '^slice_' matches nothing in the file name ISIC_0000.png"), std::string::npos) << msg;
  // Class folders with a folder per patient.
  for (const char* cls : {"benign", "malignant"})
    for (int pt = 0; pt < 3; ++pt) {
      fs::create_directories(dir.path() / "tree" / cls / ("pt" + std::to_string(pt)));
      for (int v = 0; v < 2; ++v)
        cv::imwrite(dir / ("tree/" + std::string(cls) + "/pt" + std::to_string(pt) + "/v" + std::to_string(v) + ".png"),
                    distinct_image(pt, v, cls[0]));
    }
  GroupSpec folders;
  folders.folders = true;
  auto t = load_class_folders(dir / "tree", "derm", folders);
  ASSERT_EQ(t.records.size(), 12u);
  EXPECT_EQ(t.records[0].group, "pt0");
  EXPECT_EQ(t.records[11].group, "pt2");
  cv::imwrite(dir / "tree/benign/loose.png", distinct_image(9, 9, 9));
  msg = error_of([&] { load_class_folders(dir / "tree", "derm", folders); });
  EXPECT_NE(msg.find("loose.png lies directly in its class folder"), std::string::npos) << msg;
}

TEST(Groups, PrepareDataSplitsByGroupAndRefusesSharedTestGroups) {
  test::TempDir dir;
  // Two modalities of class folders with a folder per patient: 12 patients x 3 views per class.
  for (const char* mod : {"derm", "cyto"})
    for (const char* cls : {"a", "b"})
      for (int pt = 0; pt < 12; ++pt)
        for (int v = 0; v < 3; ++v) {
          const auto folder = dir.path() / mod / cls / (std::string(cls) + "pt" + std::to_string(pt));
          fs::create_directories(folder);
          cv::imwrite((folder / ("v" + std::to_string(v) + ".png")).string(), distinct_image(pt, v, cls[0] + mod[0]));
        }
  DataConfig cfg;
  cfg.modalities = {{"derm", dir / "derm", "", {}, ""}, {"cyto", dir / "cyto", "", {}, ""}};
  cfg.modalities[0].groups.folders = true;
  cfg.image_size = 12;
  auto d = prepare_data(cfg, 3);
  EXPECT_EQ(d.grouped, (std::vector<bool>{true, false}));
  std::map<std::string, std::set<std::string>> parts;
  for (const auto& [part, sets] : {std::pair<const char*, const std::vector<ModalitySet>*>{"train", &d.train}, {"val", &d.val}, {"test", &d.test}})
    for (const auto& r : (*sets)[0].records) parts[r.group].insert(part);
  EXPECT_EQ(parts.size(), 24u);
  for (const auto& [g, p] : parts) EXPECT_EQ(p.size(), 1u) << g;
  const auto counts = group_counts(d);
  EXPECT_EQ(counts[0].spanning, 0u);
  EXPECT_EQ(counts[0].train_groups + counts[0].val_groups + counts[0].test_groups, 24u);
  // The split record keeps the groups; a record without groups reads as one group per image.
  const auto back = PreparedData::from_json(d.to_json(), "split.json");
  EXPECT_EQ(back.grouped, d.grouped);
  EXPECT_EQ(back.train[0].records[0].group, d.train[0].records[0].group);
  auto old = d.to_json();
  old.erase("grouped");
  for (auto& r : old["train"][0]) r.erase(2);
  const auto older = PreparedData::from_json(old, "split.json");
  EXPECT_EQ(older.grouped, (std::vector<bool>{false, false}));
  EXPECT_EQ(older.train[0].records[0].group, older.train[0].records[0].path);
  for (const auto& bad : {nlohmann::json(""), nlohmann::json(4)}) {
    auto j = d.to_json();
    j["train"][0][0][2] = bad;
    const auto m = error_of([&] { PreparedData::from_json(j, "split.json"); });
    EXPECT_NE(m.find("allowed [path, label] or [path, label, group]"), std::string::npos) << m;
  }
  // Examples carry the scored image's group.
  const auto ex = d.eval_examples("test", 3);
  EXPECT_EQ(ex[0].group, d.test[0].records[0].group);
  // A test folder sharing a patient with training: refused, naming the group and both files.
  fs::create_directories(dir.path() / "test/a/apt0");
  fs::create_directories(dir.path() / "test/b/bpt77");
  cv::imwrite(dir / "test/a/apt0/x.png", distinct_image(50, 1, 1));
  cv::imwrite(dir / "test/b/bpt77/x.png", distinct_image(51, 1, 1));
  cfg.modalities[0].test = dir / "test";
  auto msg = error_of([&] { prepare_data(cfg, 3); });
  EXPECT_NE(msg.find("group 'apt0' is in both the training data"), std::string::npos) << msg;
  EXPECT_NE(msg.find("test/a/apt0/x.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("derm/a/apt0/v0.png"), std::string::npos) << msg;
  // All images in one group: an error naming the setting.
  cfg.modalities[0].test = "";
  cfg.modalities[0].groups = {};
  cfg.modalities[0].groups.pattern = "(v)";
  msg = error_of([&] { prepare_data(cfg, 3); });
  EXPECT_NE(msg.find("group_pattern '(v)': found 1 group in 72 images, allowed at least 3"), std::string::npos) << msg;
}

// Paired cases grouped by a manifest column: no patient in two parts, the groups kept in
// split.json, and a test manifest sharing a patient with the training manifest refused.
TEST(Groups, PairedCasesSplitByGroupAndRefuseSharedTestGroups) {
  test::TempDir dir;
  fs::create_directories(dir.path() / "img");
  std::string csv = "a,b,finding,patient\n", test_csv = csv;
  for (int pt = 0; pt < 16; ++pt)
    for (int v = 0; v < 3; ++v) {
      const std::string id = "p" + std::to_string(pt) + "v" + std::to_string(v);
      cv::imwrite(dir / ("img/" + id + "a.png"), distinct_image(pt, v, 1));
      cv::imwrite(dir / ("img/" + id + "b.png"), distinct_image(pt, v, 2));
      csv += "img/" + id + "a.png,img/" + id + "b.png," + (pt % 2 ? "yes" : "no") + ",P" + std::to_string(pt) + "\n";
    }
  test::write_bytes(dir / "cases.csv", csv);
  DataConfig cfg;
  cfg.paired = true;
  cfg.paired_spec.csv = dir / "cases.csv";
  cfg.paired_spec.image_columns = {"a", "b"};
  cfg.paired_spec.label_columns = {"finding"};
  cfg.paired_spec.groups.column = "patient";
  cfg.image_size = 16;
  const auto d = prepare_data(cfg, 5);
  EXPECT_EQ(d.grouped, std::vector<bool>{true});
  std::map<std::string, std::set<std::string>> parts;
  size_t cases = 0;
  for (const auto& part : d.parts())
    for (const auto& c : part.cases) {
      parts[c.group].insert(part.name);
      ++cases;
    }
  EXPECT_EQ(cases, 48u);
  EXPECT_EQ(parts.size(), 16u);
  for (const auto& [g, ps] : parts) EXPECT_EQ(ps.size(), 1u) << g;
  EXPECT_FALSE(d.cases_test.empty());
  EXPECT_FALSE(d.cases_val.empty());
  // split.json keeps the groups.
  const auto back = PreparedData::from_json(d.to_json(), "split.json");
  ASSERT_EQ(back.cases_test.size(), d.cases_test.size());
  EXPECT_EQ(back.cases_test[0].group, d.cases_test[0].group);
  EXPECT_EQ(back.grouped, std::vector<bool>{true});
  for (const auto& bad : {nlohmann::json::array({true, false}), nlohmann::json::array({1}), nlohmann::json("yes")}) {
    auto j = d.to_json();
    j["grouped"] = bad;
    const auto m = error_of([&] { PreparedData::from_json(j, "split.json"); });
    EXPECT_NE(m.find("split.json: grouped: found"), std::string::npos) << m;
    EXPECT_NE(m.find("allowed one true/false per manifest (1)"), std::string::npos) << m;
  }
  auto bad_case = d.to_json();
  bad_case["test"][0]["group"] = 7;
  EXPECT_NE(error_of([&] { PreparedData::from_json(bad_case, "split.json"); }).find("group"), std::string::npos);
  // A test manifest with a training patient in it.
  test_csv += "img/p3v0a.png,img/p3v0b.png,yes,P3\n";
  test::write_bytes(dir / "test.csv", test_csv);
  cfg.paired_test_csv = dir / "test.csv";
  const auto msg = error_of([&] { prepare_data(cfg, 5); });
  EXPECT_NE(msg.find("group 'P3' is in both the training data (" + (dir / "cases.csv") + ": "), std::string::npos) << msg;
  EXPECT_NE(msg.find("and the test data (" + (dir / "test.csv") + ": "), std::string::npos) << msg;
  EXPECT_NE(msg.find("img/p3v0a.png"), std::string::npos) << msg;
}

TEST(Groups, DuplicatePixelsAcrossPartsAreALeakUnlessAllowed) {
  test::TempDir dir;
  for (const char* mod : {"m1", "m2"})
    for (const char* cls : {"a", "b"})
      for (int i = 0; i < 6; ++i) {
        fs::create_directories(dir.path() / mod / cls);
        cv::imwrite(dir / (std::string(mod) + "/" + cls + "/" + std::to_string(i) + ".png"), distinct_image(i, cls[0], mod[1]));
      }
  fs::create_directories(dir.path() / "test/a");
  fs::create_directories(dir.path() / "test/b");
  // A re-encoded copy (BMP of a training PNG) in the test folder, and a new image.
  cv::imwrite(dir / "test/a/copy.bmp", cv::imread(dir / "m1/a/2.png"));
  cv::imwrite(dir / "test/b/new.png", distinct_image(40, 41, 42));
  DataConfig cfg;
  cfg.modalities = {{"m1", dir / "m1", dir / "test", {}, ""}, {"m2", dir / "m2", "", {}, ""}};
  cfg.image_size = 12;
  auto d = prepare_data(cfg, 1);
  ImageCache cache(cfg.image_options());
  std::vector<std::string> warnings;
  auto d1 = d;
  auto msg = error_of([&] { verify_prepared(d1, cache, cfg, warnings); });
  EXPECT_NE(msg.find("leak: m1: the same pixels in"), std::string::npos) << msg;
  EXPECT_NE(msg.find("copy.bmp"), std::string::npos) << msg;
  EXPECT_NE(msg.find("m1/a/2.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--allow-duplicates"), std::string::npos) << msg;
  cfg.allow_duplicates = true;
  verify_prepared(d, cache, cfg, warnings);
  ASSERT_FALSE(warnings.empty());
  EXPECT_EQ(warnings.back(), "1 duplicate pairs across parts allowed (--allow-duplicates)");
  // The data check reports it, with counts per class and part.
  const auto c = check_data(cfg, 1);
  EXPECT_FALSE(c.ok());
  EXPECT_EQ(c.problems(), "1 duplicate pairs across parts");
  ASSERT_EQ(c.duplicates.size(), 1u);
  EXPECT_EQ(c.duplicates[0].modality, "m1");
  size_t images = 0;
  for (const auto& r : c.rows) images += r.images;
  EXPECT_EQ(images, 26u);
  EXPECT_NE(c.table().find("duplicates across parts (same decoded pixels): 1"), std::string::npos) << c.table();
  // The same from the command line: `drifa check` prints the table and exits 1; `train` refuses
  // before its first step; with the copy gone both go on.
  test::write_bytes(dir / "run.toml", "[data]\nimage_size = 16\n[[data.modality]]\nname = \"m1\"\ntrain = \"m1\"\ntest = \"test\"\n"
                                      "[[data.modality]]\nname = \"m2\"\ntrain = \"m2\"\n[train]\nepochs = 1\n");
  auto r = test::run(test::cli() + " check -c " + (dir / "run.toml"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("the data check found 1 duplicate pairs across parts (listed above)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("copy.bmp"), std::string::npos) << r.output;
  r = test::run(test::cli() + " train -q -c " + (dir / "run.toml") + " -o " + (dir / "run"));
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("leak: m1: the same pixels in"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir.path() / "run" / "best.safetensors"));
  fs::remove(dir.path() / "test/a/copy.bmp");
  cv::imwrite(dir / "test/a/other.png", distinct_image(50, 51, 52));
  r = test::run(test::cli() + " check -c " + (dir / "run.toml"));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("ok: no leak between parts, every image readable"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("groups (m1): none named, each image its own group"), std::string::npos) << r.output;
}

TEST(Groups, GroupSettingsAreValidated) {
  auto parse = [](const std::string& extra) {
    auto j = nlohmann::json::parse(R"({"modality": [{"name": "a", "train": "x"}, {"name": "b", "manifest": "m.csv"}]})");
    const auto e = nlohmann::json::parse(extra);
    for (auto it = e.begin(); it != e.end(); ++it) j["modality"][it.key() == "b" ? 1 : 0].update(it.value());
    return error_of([&] { DataConfig::from_json(settings::Table(j, "run.toml", "data"), "/tmp"); });
  };
  EXPECT_NE(parse(R"({"a": {"group_column": "pid"}})").find("group_column: needs a manifest"), std::string::npos);
  EXPECT_NE(parse(R"({"b": {"group_folders": true}})").find("group_folders: needs class folders"), std::string::npos);
  EXPECT_NE(parse(R"({"b": {"group_column": "pid", "group_pattern": "x"}})").find("at most one of"), std::string::npos);
  EXPECT_NE(parse(R"({"a": {"group_pattern": "(unclosed"}})").find("group_pattern: found '(unclosed'"), std::string::npos);
  EXPECT_NE(parse(R"({"b": {"group_column": ""}})").find("group_column: found an empty string"), std::string::npos);
}

// One run with patient folders through every command: the groups chosen at train time reach
// split.json, metrics.json, predictions.csv, calibration.json, uq, cv, predict and the report.
TEST(GroupsCli, PatientFoldersReachEveryCommand) {
  test::TempDir dir;
  const auto cfg = test::make_run_config(dir, "epochs = 2\n", 8, 32);
  // Two images per patient: CLASS/P<class><i/2>/ in training, CLASS/T<class><i/2>/ in test.
  for (const char* mod : {"derm", "mri"})
    for (const char* part : {"train", "test"})
      for (const auto& cls : fs::directory_iterator(dir.path() / "data" / mod / part)) {
        std::vector<fs::path> files;
        for (const auto& f : fs::directory_iterator(cls.path()))
          if (f.is_regular_file()) files.push_back(f.path());
        std::sort(files.begin(), files.end());
        for (size_t i = 0; i < files.size(); ++i) {
          const auto patient = cls.path() / ((part == std::string("train") ? "P" : "T") + cls.path().filename().string() + std::to_string(i / 2));
          fs::create_directories(patient);
          fs::rename(files[i], patient / files[i].filename());
        }
      }
  auto toml = test::read_bytes(cfg);
  for (const char* mod : {"derm", "mri"}) {
    const std::string at = std::string("test = \"") + mod + "/test\"\n";
    toml.replace(toml.find(at), at.size(), at + "group_folders = true\n");
  }
  test::write_bytes(cfg, toml + "[evaluate]\naggregate = \"mean\"\n");
  const std::string run = dir / "run", cli = test::cli();
  auto r = test::run(cli + " train -c " + cfg + " -o " + run);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("groups"), std::string::npos) << r.output;
  const auto split = test::read_json(run + "/split.json");
  ASSERT_TRUE(split.contains("grouped"));
  EXPECT_EQ(split["grouped"], nlohmann::json::array({true, true}));
  auto metrics = test::read_json(run + "/metrics.json");
  for (const char* task : {"derm", "mri"}) {
    const auto& t = metrics["tasks"][task];
    EXPECT_EQ(t["intervals"]["groups"], 6) << task;  // 12 test images of 6 patients (3 classes x 2)
    ASSERT_TRUE(t.contains("group_level")) << task;
    EXPECT_EQ(t["group_level"]["groups"], 6);
    EXPECT_EQ(t["group_level"]["aggregate"], "mean");
  }
  const auto preds = test::read_bytes(run + "/predictions.csv");
  EXPECT_NE(preds.find(",group,true_label,"), std::string::npos) << preds.substr(0, 200);
  EXPECT_NE(preds.find(",Tannular0,"), std::string::npos);
  // calibrate: conformal scores one per validation patient, the count recorded.
  r = test::run(cli + " calibrate " + run + " -T 2");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto cal = runs::files::read_calibration(run);
  ASSERT_TRUE(cal.has_value());
  const auto* m = cal->find("derm", "deterministic");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->groups, 3);   // 6 validation images of 3 patients (one per class)
  EXPECT_EQ(m->samples, 3);  // one conformal score per patient
  ASSERT_FALSE(m->scores.empty());
  EXPECT_EQ(m->scores[0].size(), 3u);
  // uq: image rows with cluster intervals, and a group-level row per method.
  r = test::run(cli + " uq " + run + " -T 2 --resamples 50");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("per group"), std::string::npos) << r.output;
  const auto uq = test::read_json(run + "/uq/uq.json");
  EXPECT_EQ(uq["tasks"]["derm"]["deterministic"]["group_level"]["groups"], 6);
  // predict: per case and per patient.
  std::string csv = "derm,mri,patient\n";
  std::vector<std::string> derm, mri;
  for (const auto& e : fs::recursive_directory_iterator(dir.path() / "data/derm/test/annular"))
    if (e.is_regular_file()) derm.push_back(e.path().string());
  for (const auto& e : fs::recursive_directory_iterator(dir.path() / "data/mri/test"))
    if (e.is_regular_file()) mri.push_back(e.path().string());
  std::sort(derm.begin(), derm.end());
  ASSERT_GE(derm.size(), 3u);
  for (size_t i = 0; i < 3; ++i) csv += derm[i] + "," + mri[i] + "," + (i < 2 ? "A" : "B") + "\n";
  test::write_bytes(dir / "cases.csv", csv);
  r = test::run(cli + " predict " + run + " -T 0 --cases " + (dir / "cases.csv") + " --group-column patient -o " + (dir / "p.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto p = test::read_json(dir / "p.json");
  ASSERT_EQ(p["groups"].size(), 2u);
  EXPECT_EQ(p["groups"][0]["group"], "A");
  EXPECT_EQ(p["groups"][0]["cases"].size(), 2u);
  r = test::run(cli + " predict " + run + " -T 0 --cases " + (dir / "cases.csv") + " --group-column nobody");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("nobody"), std::string::npos) << r.output;
  // cv: group folds, pooled group-level metrics; the report shows the group rows.
  const std::string cv = dir / "cv";
  r = test::run(cli + " cv -q -c " + cfg + " -o " + cv + " -k 2 --epochs 1 --resamples 50");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto cvm = test::read_json(cv + "/cv_metrics.json");
  EXPECT_TRUE(cvm["tasks"]["derm"]["pooled"].contains("group_level"));
  EXPECT_TRUE(cvm["tasks"]["derm"]["pooled"]["intervals"].contains("groups"));
  r = test::run(cli + " report -q " + cv);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(test::read_bytes(cv + "/report.html").find("stratified group folds"), std::string::npos);
  r = test::run(cli + " report -q " + run);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto html = test::read_bytes(run + "/report.html");
  EXPECT_NE(html.find("groups (mean)"), std::string::npos);
  EXPECT_NE(html.find("cluster bootstrap over groups"), std::string::npos);
  EXPECT_NE(html.find("deterministic, 6 groups (mean)"), std::string::npos);
  // A group-level block that does not read is refused by its file and key, not read blindly.
  auto uqj = test::read_json(run + "/uq/uq.json");
  uqj["tasks"]["derm"]["deterministic"]["group_level"]["aggregate"] = 5;
  test::write_bytes(run + "/uq/uq.json", uqj.dump());
  r = test::run(cli + " report -q " + run);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("uq.json: tasks.derm.deterministic.group_level.aggregate"), std::string::npos) << r.output;
  auto cvj = test::read_json(cv + "/cv_metrics.json");
  cvj["tasks"]["derm"]["pooled"]["group_level"].erase("groups");
  test::write_bytes(cv + "/cv_metrics.json", cvj.dump());
  r = test::run(cli + " report -q " + cv);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("cv_metrics.json: tasks.derm.pooled.group_level"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("groups"), std::string::npos) << r.output;
  auto mj = test::read_json(run + "/metrics.json");
  mj["tasks"]["mri"]["group_level"]["groups"] = -3;
  test::write_bytes(run + "/metrics.json", mj.dump());
  r = test::run(cli + " report -q " + run);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("metrics.json: tasks.mri.group_level.groups: found -3"), std::string::npos) << r.output;
}
