#pragma once
// Confidence intervals for a task's metrics by the stratified bootstrap.
//
// Scheme: B resamples (default 2,000); each draws, within every true class c, n_c samples with
// replacement from that class's n_c samples (so class proportions stay those of the data), and
// recomputes the metric; the interval is the percentile one, [q_{(1-level)/2}, q_{(1+level)/2}]
// of the B values (linear interpolation between order statistics, numpy's default). Seeded:
// the same seed gives the same resamples. A resample where a metric is undefined (ROC-AUC with
// one class) is left out of that metric's quantiles.
//
// With groups (patients, lesions, volumes), the cluster bootstrap: the unit drawn is the group,
// with all its samples, stratified by the group's majority label; within-group correlation
// then widens the interval as it should. Each sample its own group gives the scheme above,
// resample for resample.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

namespace drifa::evaluation {

struct BootstrapOptions {
  int resamples = 2000;
  uint64_t seed = 0;
  double level = 0.95;
  int ece_bins = 15;
};

// The metrics given intervals, in this order.
inline const std::vector<std::string>& bootstrap_metrics() {
  static const std::vector<std::string> names = {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc_macro", "ece"};
  return names;
}

struct Interval {
  double low = 0, high = 0;
};
// name -> interval; a metric undefined in every resample is absent.
using Intervals = std::vector<std::pair<std::string, Interval>>;

// y_true [N] (labels of -1 skipped), probs [N, K]; groups: empty, or one per row ("" = its own).
Intervals bootstrap_intervals(const torch::Tensor& y_true, const torch::Tensor& probs, const BootstrapOptions& opt = {},
                              const std::vector<std::string>& groups = {});
// Whether groups hold a group of two or more scored rows (labels >= 0): the cluster scheme applies.
bool clustered(const torch::Tensor& y_true, const std::vector<std::string>& groups);

// The point estimates of the same metrics on the data itself (every weight 1), NaN where undefined.
std::vector<double> point_metrics(const torch::Tensor& y_true, const torch::Tensor& probs, int ece_bins = 15);

// {"accuracy": [lo, hi], ...} plus {"scheme": ..., "resamples": B, "level": 0.95, "seed": s};
// cluster: the scheme is the cluster bootstrap over `groups` groups.
nlohmann::json intervals_json(const Intervals& ci, const BootstrapOptions& opt, int64_t groups = 0);

// Percentile of sorted values by linear interpolation (numpy.percentile's default), q in [0, 1].
double quantile_sorted(const std::vector<double>& sorted, double q);

}  // namespace drifa::evaluation
