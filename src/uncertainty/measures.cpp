#include "drifa/uncertainty/measures.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "drifa/calibration/calibration.h"
#include "drifa/error.h"
#include "drifa/evaluation/evaluator.h"
#include "drifa/evaluation/metrics.h"

namespace drifa::uncertainty {

namespace {

torch::Tensor entropy(const torch::Tensor& p) {  // over the last dimension; 0 log 0 = 0
  auto p64 = p.to(torch::kFloat64);
  return -(p64 * p64.clamp_min(1e-300).log()).sum(-1);
}

// Indices sorted from least to most uncertain, ties by index.
std::vector<int64_t> certainty_order(const torch::Tensor& uncertainty) {
  auto u = uncertainty.to(torch::kFloat64).contiguous();
  const double* d = u.data_ptr<double>();
  std::vector<int64_t> idx(static_cast<size_t>(u.numel()));
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return d[a] < d[b]; });
  return idx;
}

nlohmann::json opt_json(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

}  // namespace

SampleMeasures sample_measures(const torch::Tensor& samples) {
  if (samples.dim() != 3 || samples.size(0) < 1) throw Error("sample_measures: samples must be [S, N, K]");
  SampleMeasures m;
  auto s = samples.to(torch::kFloat64);
  auto mean = s.mean(0);
  m.mean = mean.to(torch::kFloat32);
  m.predicted = mean.argmax(1);
  m.predictive_entropy = entropy(mean);
  m.expected_entropy = entropy(s).mean(0);
  m.mutual_information = (m.predictive_entropy - m.expected_entropy).clamp_min(0);
  auto picked = s.gather(2, m.predicted.view({1, -1, 1}).expand({s.size(0), -1, 1})).squeeze(2);  // [S, N]
  m.spread = picked.std(0, /*unbiased=*/false);
  return m;
}

double selective_accuracy(const torch::Tensor& correct, const torch::Tensor& uncertainty, double coverage) {
  const auto order = certainty_order(uncertainty);
  const auto n = static_cast<int64_t>(order.size());
  const int64_t k = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(coverage * double(n) - 1e-9)), 1, n);
  auto ok = correct.to(torch::kFloat64).contiguous();
  const double* d = ok.data_ptr<double>();
  double s = 0;
  for (int64_t i = 0; i < k; ++i) s += d[order[static_cast<size_t>(i)]];
  return s / double(k);
}

double aurc(const torch::Tensor& correct, const torch::Tensor& uncertainty) {
  const auto order = certainty_order(uncertainty);
  auto ok = correct.to(torch::kFloat64).contiguous();
  const double* d = ok.data_ptr<double>();
  double errors = 0, area = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    errors += 1.0 - d[order[k]];
    area += errors / double(k + 1);
  }
  return order.empty() ? 0.0 : area / double(order.size());
}

std::optional<double> error_detection_auroc(const torch::Tensor& correct, const torch::Tensor& uncertainty) {
  auto ok = correct.to(torch::kFloat64).contiguous();
  auto u = uncertainty.to(torch::kFloat64).contiguous();
  std::vector<double> scores(u.data_ptr<double>(), u.data_ptr<double>() + u.numel());
  std::vector<int> err;
  for (int64_t i = 0; i < ok.numel(); ++i) err.push_back(ok.data_ptr<double>()[i] < 0.5 ? 1 : 0);
  return evaluation::roc_auc(scores, err);
}

nlohmann::json task_summary(const torch::Tensor& labels_all, const torch::Tensor& samples_all,
                            const std::vector<std::string>& class_names, const std::vector<double>& coverages,
                            const evaluation::BootstrapOptions& ci, const std::vector<std::string>& groups_all,
                            const std::string& aggregate) {
  auto keep = labels_all.ge(0);
  auto labels = labels_all.index({keep});
  auto samples = samples_all.index({torch::indexing::Slice(), keep});
  std::vector<std::string> groups;
  if (groups_all.size() == static_cast<size_t>(labels_all.size(0)))
    for (auto i : calibration::labelled_positions(labels_all)) groups.push_back(groups_all[static_cast<size_t>(i)]);
  nlohmann::json j;
  j["samples"] = labels.size(0);
  j["passes"] = samples.size(0);
  if (labels.size(0) == 0) return j;
  const auto m = sample_measures(samples);
  j["metrics"] = evaluation::compute_metrics(labels, m.mean).to_json(class_names);
  if (const auto g = evaluation::add_intervals_and_group_level(j, labels, m.mean, class_names, ci, groups, aggregate))
    j["group_level"]["nll"] = nll(g->labels, g->probs);
  const auto correct = m.predicted.eq(labels);
  j["nll"] = nll(labels, m.mean);
  j["brier"] = brier(labels, m.mean);
  const auto rel = reliability(labels, m.mean, 15);
  j["ece"] = rel.ece;
  j["reliability"] = reliability_json(rel);
  nlohmann::json sel = nlohmann::json::array();
  for (double c : coverages)
    sel.push_back({{"coverage", c}, {"accuracy", selective_accuracy(correct, m.predictive_entropy, c)}});
  j["selective"] = sel;
  j["aurc"] = aurc(correct, m.predictive_entropy);
  const std::vector<std::pair<std::string, torch::Tensor>> measures = {
      {"predictive_entropy", m.predictive_entropy},
      {"expected_entropy", m.expected_entropy},
      {"mutual_information", m.mutual_information},
      {"spread", m.spread},
      {"one_minus_confidence", 1 - std::get<0>(m.mean.max(1)).to(torch::kFloat64)}};
  for (const auto& [name, u] : measures) {
    j["error_auroc"][name] = samples.size(0) == 1 && (name == "mutual_information" || name == "spread")
                                 ? nlohmann::json(nullptr)  // identically 0 for one sample
                                 : opt_json(error_detection_auroc(correct, u));
    j["mean"][name] = u.mean().item<double>();
  }
  return j;
}

}  // namespace drifa::uncertainty
