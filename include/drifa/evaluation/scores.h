#pragma once
// Scores of predicted probabilities against the true labels (natural logarithms): what
// calibration fits and reports, and what the uncertainty study's tables show.
#include <cstdint>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

namespace drifa::evaluation {

// Mean negative log-likelihood of the true labels (probabilities clamped at 1e-12).
double nll(const torch::Tensor& labels, const torch::Tensor& probs);
// Multi-class Brier score: mean over samples of sum_k (p_k - [y = k])^2, in [0, 2].
double brier(const torch::Tensor& labels, const torch::Tensor& probs);

// Reliability diagram over equal-width confidence bins (confidence = max probability; bin b
// holds [b/n, (b+1)/n), the last one also 1). ECE = sum_b |B_b|/N * |acc_b - conf_b|.
struct Reliability {
  std::vector<int64_t> count;
  std::vector<double> confidence, accuracy;  // per bin; 0 for empty bins
  double ece = 0;
};
Reliability reliability(const torch::Tensor& labels, const torch::Tensor& probs, int bins = 15);
// {"bins", "count", "confidence", "accuracy"}: what uq.json and the report read.
nlohmann::json reliability_json(const Reliability& r);

}  // namespace drifa::evaluation
