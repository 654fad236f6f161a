#include "drifa/evaluation/scores.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace drifa::evaluation {

double nll(const torch::Tensor& labels, const torch::Tensor& probs) {
  auto p = probs.to(torch::kFloat64).gather(1, labels.view({-1, 1})).clamp_min(1e-12);
  return -p.log().mean().item<double>();
}

double brier(const torch::Tensor& labels, const torch::Tensor& probs) {
  auto p = probs.to(torch::kFloat64);
  auto onehot = torch::zeros_like(p).scatter_(1, labels.view({-1, 1}), 1.0);
  return (p - onehot).pow(2).sum(1).mean().item<double>();
}

Reliability reliability(const torch::Tensor& labels, const torch::Tensor& probs, int bins) {
  Reliability r;
  r.count.assign(static_cast<size_t>(bins), 0);
  r.confidence.assign(static_cast<size_t>(bins), 0.0);
  r.accuracy.assign(static_cast<size_t>(bins), 0.0);
  auto p = probs.to(torch::kFloat64);
  auto [conf, pred] = p.max(1);
  auto correct = pred.eq(labels).to(torch::kFloat64);
  const int64_t n = p.size(0);
  auto c = conf.accessor<double, 1>();
  auto ok = correct.accessor<double, 1>();
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    // A non-finite probability has no bin; the calibration error is then undefined (NaN -> null).
    if (!std::isfinite(c[i])) {
      finite = false;
      continue;
    }
    const int b = std::clamp(static_cast<int>(c[i] * bins), 0, bins - 1);
    r.count[b] += 1;
    r.confidence[b] += c[i];
    r.accuracy[b] += ok[i];
  }
  for (int b = 0; b < bins; ++b) {
    if (r.count[b] == 0) continue;
    r.confidence[b] /= double(r.count[b]);
    r.accuracy[b] /= double(r.count[b]);
    r.ece += double(r.count[b]) / double(n) * std::abs(r.accuracy[b] - r.confidence[b]);
  }
  if (!finite) r.ece = std::nan("");
  return r;
}

nlohmann::json reliability_json(const Reliability& r) {
  return {{"bins", r.count.size()}, {"count", r.count}, {"confidence", r.confidence}, {"accuracy", r.accuracy}};
}

}  // namespace drifa::evaluation
