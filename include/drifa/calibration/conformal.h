#pragma once
// Split conformal prediction sets (Vovk et al.; Angelopoulos & Bates, "A gentle introduction").
//
// Calibration: the nonconformity score s_i of each labelled calibration sample (n of them),
// threshold q = the k-th smallest score with k = ceil((n + 1)(1 - alpha)) (q = +inf when k > n).
// Prediction: the set {y : s(x, y) <= q}. For exchangeable calibration and test data the set
// holds the true class with probability >= 1 - alpha (and < 1 - alpha + 1/(n + 1) without ties).
//
// Scores, from the (calibrated) probabilities p of one sample:
//   lac             s(x, y) = 1 - p_y                       (least ambiguous sets, Sadinle et al.)
//   aps             s(x, y) = sum of p_j over the classes ranked before y + p_y
//   aps_randomized  s(x, y) = sum of p_j over the classes ranked before y + u * p_y,
//                   u ~ U(0, 1), one draw per sample (Romano et al., 2020)
// Classes are ranked by decreasing probability, ties by class index. Sums run in rank order in
// double precision.
#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

namespace drifa::calibration {

enum class Score { Lac, Aps, ApsRandomized };
const std::vector<Score>& all_scores();
std::string score_name(Score s);  // "lac" | "aps" | "aps_randomized"
Score parse_score(const std::string& name, const std::string& source);

// One uniform draw per sample id, fixed by the seed (the randomised APS's u).
std::vector<double> uniform_draws(uint64_t seed, const std::vector<int64_t>& ids);

// Scores of the true classes: probs [N, K], labels [N] (>= 0), u [N] (used by aps_randomized).
std::vector<double> true_class_scores(const torch::Tensor& probs, const torch::Tensor& labels, Score score,
                                      const std::vector<double>& u);

// The threshold from calibration scores (any order); +inf when the set must be every class.
double conformal_threshold(std::vector<double> scores, double alpha);
// The same from scores already sorted ascending.
double conformal_threshold_sorted(const std::vector<double>& sorted, double alpha);

// Prediction sets [N, K] (bool) for probs [N, K].
torch::Tensor prediction_sets(const torch::Tensor& probs, Score score, double threshold, const std::vector<double>& u);

// Empirical coverage and set size of sets on labelled samples, overall and per true class.
struct Coverage {
  int64_t samples = 0;
  double coverage = 0, mean_size = 0;
  std::vector<int64_t> class_samples;
  std::vector<double> class_coverage, class_mean_size;  // NaN for classes without samples
};
Coverage coverage(const torch::Tensor& sets, const torch::Tensor& labels);

}  // namespace drifa::calibration
