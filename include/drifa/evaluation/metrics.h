#pragma once
// Classification metrics for one task, with scikit-learn's conventions (a class never predicted
// has precision 0; macro averages over all K classes; ROC-AUC one-vs-rest, macro over classes
// that have both positives and negatives).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

namespace drifa::evaluation {

struct ClassMetrics {
  double precision = 0, recall = 0, f1 = 0;
  int64_t support = 0;
};

struct TaskMetrics {
  int64_t samples = 0;
  double accuracy = 0, macro_precision = 0, macro_recall = 0, macro_f1 = 0;
  // Mean recall over the classes present in y_true (scikit-learn's balanced_accuracy_score);
  // macro_recall averages over all K classes.
  double balanced_accuracy = 0;
  std::optional<double> roc_auc_macro;  // unset when no class has both positives and negatives
  std::vector<ClassMetrics> per_class;
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
  nlohmann::json to_json(const std::vector<std::string>& class_names) const;
};

// y_true [N] int64 in [0, K); probs [N, K] (rows sum to 1). Samples with label -1 are skipped.
TaskMetrics compute_metrics(const torch::Tensor& y_true, const torch::Tensor& probs);

// Area under the ROC curve of scores for binary labels (ties get average ranks).
std::optional<double> roc_auc(const std::vector<double>& scores, const std::vector<int>& positive);

}  // namespace drifa::evaluation
