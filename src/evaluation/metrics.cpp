#include "drifa/evaluation/metrics.h"

#include <algorithm>
#include <numeric>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "drifa/error.h"

namespace drifa::evaluation {

std::optional<double> roc_auc(const std::vector<double>& scores, const std::vector<int>& positive) {
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  std::vector<double> rank(n);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j + 1 < n && scores[order[j + 1]] == scores[order[i]]) ++j;
    const double r = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (size_t k = i; k <= j; ++k) rank[order[k]] = r;
    i = j + 1;
  }
  double pos = 0, sum = 0;
  for (size_t i = 0; i < n; ++i)
    if (positive[i]) {
      pos += 1;
      sum += rank[i];
    }
  const double neg = static_cast<double>(n) - pos;
  if (pos == 0 || neg == 0) return std::nullopt;
  return (sum - pos * (pos + 1) / 2.0) / (pos * neg);  // Mann-Whitney U / (pos * neg)
}

TaskMetrics compute_metrics(const torch::Tensor& y_true_in, const torch::Tensor& probs_in) {
  if (probs_in.dim() != 2 || y_true_in.dim() != 1 || y_true_in.size(0) != probs_in.size(0))
    throw Error("compute_metrics: need labels [N] and probabilities [N, K]");
  auto keep = y_true_in.ge(0);
  auto y = y_true_in.index({keep}).to(torch::kLong).contiguous();
  auto p = probs_in.index({keep}).to(torch::kDouble).contiguous();
  const int64_t N = y.size(0), K = p.size(1);
  TaskMetrics m;
  m.samples = N;
  m.confusion.assign(K, std::vector<int64_t>(K, 0));
  m.per_class.assign(K, {});
  if (N == 0) return m;
  auto pred = p.argmax(1);
  auto ya = y.accessor<int64_t, 1>();
  auto pa = pred.accessor<int64_t, 1>();
  int64_t correct = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (ya[i] >= K) throw Error("compute_metrics: label " + std::to_string(ya[i]) + " >= classes " + std::to_string(K));
    m.confusion[ya[i]][pa[i]]++;
    correct += ya[i] == pa[i];
  }
  m.accuracy = static_cast<double>(correct) / static_cast<double>(N);
  for (int64_t k = 0; k < K; ++k) {
    int64_t tp = m.confusion[k][k], fp = 0, fn = 0;
    for (int64_t j = 0; j < K; ++j) {
      if (j == k) continue;
      fp += m.confusion[j][k];
      fn += m.confusion[k][j];
    }
    auto& c = m.per_class[k];
    c.support = tp + fn;
    c.precision = tp + fp > 0 ? double(tp) / double(tp + fp) : 0.0;
    c.recall = tp + fn > 0 ? double(tp) / double(tp + fn) : 0.0;
    c.f1 = c.precision + c.recall > 0 ? 2 * c.precision * c.recall / (c.precision + c.recall) : 0.0;
    m.macro_precision += c.precision / double(K);
    m.macro_recall += c.recall / double(K);
    m.macro_f1 += c.f1 / double(K);
  }
  int64_t present = 0;
  for (const auto& c : m.per_class)
    if (c.support > 0) {
      m.balanced_accuracy += c.recall;
      ++present;
    }
  if (present > 0) m.balanced_accuracy /= double(present);
  // One-vs-rest ROC-AUC; for two classes this is the usual binary AUC of class 1.
  auto pp = p.accessor<double, 2>();
  std::vector<double> aucs;
  for (int64_t k = (K == 2 ? 1 : 0); k < K; ++k) {
    std::vector<double> s(N);
    std::vector<int> pos(N);
    for (int64_t i = 0; i < N; ++i) {
      s[i] = pp[i][k];
      pos[i] = ya[i] == k;
    }
    if (auto a = roc_auc(s, pos)) aucs.push_back(*a);
  }
  if (!aucs.empty()) m.roc_auc_macro = std::accumulate(aucs.begin(), aucs.end(), 0.0) / double(aucs.size());
  return m;
}

nlohmann::json TaskMetrics::to_json(const std::vector<std::string>& names) const {
  nlohmann::json per = nlohmann::json::object();
  for (size_t k = 0; k < per_class.size(); ++k) {
    const auto& c = per_class[k];
    per[k < names.size() ? names[k] : std::to_string(k)] = {
        {"precision", c.precision}, {"recall", c.recall}, {"f1", c.f1}, {"support", c.support}};
  }
  return {{"samples", samples},
          {"accuracy", accuracy},
          {"balanced_accuracy", balanced_accuracy},
          {"macro_precision", macro_precision},
          {"macro_recall", macro_recall},
          {"macro_f1", macro_f1},
          {"roc_auc_macro", roc_auc_macro ? nlohmann::json(*roc_auc_macro) : nlohmann::json(nullptr)},
          {"per_class", per},
          {"confusion_matrix", confusion},
          {"classes", names}};
}

}  // namespace drifa::evaluation
