#pragma once
// A model's (or an ensemble's) calibration: per task and per predictive method, the fitted
// temperature and the conformal scores of the calibration part, as `drifa calibrate` stores it
// (runs::files::kCalibration; a run's best.safetensors also carries it, metadata
// "drifa.calibration"). Every consumer (evaluate, uq, predict, report) applies it through
// calibrate() and prediction_set().
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

#include "drifa/calibration/conformal.h"
#include "drifa/io/safetensors.h"

namespace drifa::calibration {

// Which stream of uniform draws a part of the data uses (aps_randomized's u).
enum class Part : uint64_t { Calibration = 3, Test = 4, Predict = 5 };
std::vector<double> part_draws(uint64_t seed, Part part, const std::vector<int64_t>& ids);

struct MethodCalibration {
  double temperature = 1;
  int64_t samples = 0;
  // On the calibration part, before (T = 1) and after.
  double nll_before = 0, nll_after = 0, ece_before = 0, ece_after = 0, brier_before = 0, brier_after = 0;
  std::vector<std::vector<double>> scores;  // per score (all_scores() order), sorted ascending
  // With groups: the scores are one per validation group (a seeded draw of one of its images),
  // so the conformal guarantee holds for an image of a new group; 0 = each image its own group.
  int64_t groups = 0;
  double threshold(Score s, double alpha) const;
};

struct Calibration {
  std::string part = "val";  // the split it was fitted on
  int64_t models = 1, passes = 0;
  uint64_t seed = 0;         // MC masks and aps_randomized draws
  double alpha = 0.1;        // the default miscoverage of prediction sets
  Score score = Score::Lac;  // the default score of prediction sets
  std::map<std::string, std::map<std::string, MethodCalibration>> tasks;  // task -> method -> fit
  // runs::weights_hash of each model it was fitted on, in member order; empty in files written
  // before the check existed (read as unchecked).
  std::vector<std::string> weights;

  // Refuses a calibration fitted on other weights than now's (a folder retrained or a member
  // replaced after `drifa calibrate`): "SOURCE: fitted on other model weights ...".
  void check_weights(const std::vector<std::string>& now, const std::string& source) const;

  const MethodCalibration* find(const std::string& task, const std::string& method) const;  // nullptr: none
  nlohmann::json to_json() const;
  // Validated: temperatures in range, scores finite and sorted, names known.
  static Calibration from_json(const nlohmann::json& j, const std::string& source);
};

// The positions of the labelled samples (label >= 0), in order.
std::vector<int64_t> labelled_positions(const torch::Tensor& labels);

// Fits one method: labels [N] (-1 skipped), samples [S, N, K] of the calibration part; ids
// index the draws of aps_randomized. The temperature is fitted on every labelled image. groups
// (one per row, "" = its own): when several rows share one, the conformal scores are those of
// one image per group, drawn from the seed. Split conformal needs exchangeable units, and the
// images of one patient are not exchangeable with those of others; patients are.
MethodCalibration fit_method(const torch::Tensor& labels, const torch::Tensor& samples, const std::vector<int64_t>& ids,
                             uint64_t seed, const std::vector<std::string>& groups = {});

// The tempered samples of a method ([S, N, K], float64); T = 1 when cal is null.
torch::Tensor calibrate(const torch::Tensor& samples, const MethodCalibration* cal);

// Conformal sets and their coverage on labelled samples, for each alpha and score:
// {"alpha": {"0.1": {"lac": {coverage, mean_size, threshold, per_class: {name: {...}}}}}}.
nlohmann::json conformal_summary(const MethodCalibration& cal, const torch::Tensor& probs, const torch::Tensor& labels,
                                 const std::vector<double>& u, const std::vector<double>& alphas,
                                 const std::vector<std::string>& class_names);

std::string alpha_key(double alpha);  // "0.1", "0.05"

}  // namespace drifa::calibration
