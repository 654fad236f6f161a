#pragma once
// Uncertainty and calibration measures from sampled probabilities (natural logarithms, nats).
//
// samples [S, N, K]: S stochastic predictions (MC passes, ensemble members, or S = 1 for a
// deterministic model) of N samples over K classes.
//   predictive entropy  H[mean_s p_s]            (total uncertainty)
//   expected entropy    mean_s H[p_s]            (aleatoric)
//   mutual information  H[mean] - mean_s H[p_s]  (epistemic; 0 when S = 1)
//   spread              std_s p_s[predicted]     (population std; 0 when S = 1)
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

#include "drifa/evaluation/bootstrap.h"
#include "drifa/evaluation/scores.h"

namespace drifa::uncertainty {

struct SampleMeasures {
  torch::Tensor mean;                // [N, K]
  torch::Tensor predicted;           // [N] int64
  torch::Tensor predictive_entropy;  // [N]
  torch::Tensor expected_entropy;    // [N]
  torch::Tensor mutual_information;  // [N]
  torch::Tensor spread;              // [N]
};
SampleMeasures sample_measures(const torch::Tensor& samples);

// NLL, Brier and the reliability diagram live in evaluation/scores.h (calibration uses them too).
using evaluation::brier;
using evaluation::nll;
using evaluation::Reliability;
using evaluation::reliability;
using evaluation::reliability_json;

// Selective prediction: samples ranked from least to most uncertain (ties by index).
// Accuracy on the most certain ceil(coverage * N) samples.
double selective_accuracy(const torch::Tensor& correct, const torch::Tensor& uncertainty, double coverage);
// Area under the risk-coverage curve: mean over k = 1..N of the error rate of the k most certain.
double aurc(const torch::Tensor& correct, const torch::Tensor& uncertainty);
// How well an uncertainty measure flags the model's own errors (AUROC, errors = positives);
// unset when all predictions are right or all wrong.
std::optional<double> error_detection_auroc(const torch::Tensor& correct, const torch::Tensor& uncertainty);

// Everything above for one task and one method, as JSON: metrics (accuracy, macro P/R/F1,
// confusion), nll, brier, ece, reliability, selective accuracy at the coverages, aurc, the
// error-detection AUROC of each measure and the means of each measure. Labels of -1 are skipped.
// With the bootstrap intervals of the mean prediction's metrics ("intervals").
// With groups (one per row) that hold several rows: cluster-bootstrap intervals, and unless
// aggregate is "none", "group_level": the metrics, NLL and ECE of one prediction per group
// (evaluation/aggregate.h) from the mean prediction.
nlohmann::json task_summary(const torch::Tensor& labels, const torch::Tensor& samples,
                            const std::vector<std::string>& class_names, const std::vector<double>& coverages,
                            const evaluation::BootstrapOptions& ci = {}, const std::vector<std::string>& groups = {},
                            const std::string& aggregate = "none");

}  // namespace drifa::uncertainty
