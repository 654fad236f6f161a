#pragma once
// Confidence intervals for a task's metrics by the stratified bootstrap.
//
// Scheme: B resamples (default 2,000); each draws, within every true class c, n_c samples with
// replacement from that class's n_c samples (so class proportions stay those of the data), and
// recomputes the metric; the interval is the percentile one, [q_{(1-level)/2}, q_{(1+level)/2}]
// of the B values (linear interpolation between order statistics, numpy's default). Seeded:
// the same seed gives the same resamples. A resample where a metric is undefined (ROC-AUC with
// one class) is left out of that metric's quantiles.
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

// y_true [N] (labels of -1 skipped), probs [N, K].
Intervals bootstrap_intervals(const torch::Tensor& y_true, const torch::Tensor& probs, const BootstrapOptions& opt = {});

// The point estimates of the same metrics on the data itself (every weight 1), NaN where undefined.
std::vector<double> point_metrics(const torch::Tensor& y_true, const torch::Tensor& probs, int ece_bins = 15);

// {"accuracy": [lo, hi], ...} plus {"scheme": ..., "resamples": B, "level": 0.95, "seed": s}.
nlohmann::json intervals_json(const Intervals& ci, const BootstrapOptions& opt);

// Percentile of sorted values by linear interpolation (numpy.percentile's default), q in [0, 1].
double quantile_sorted(const std::vector<double>& sorted, double q);

}  // namespace drifa::evaluation
