#include "drifa/calibration/temperature.h"

#include <algorithm>
#include <cmath>

#include <torch/torch.h>

#include "drifa/error.h"

namespace drifa::calibration {

namespace {

torch::Tensor log_samples(const torch::Tensor& samples) {
  if (samples.dim() != 3) throw Error("temperature scaling: samples must be [S, N, K]");
  return samples.to(torch::kFloat64).clamp_min(1e-12).log();
}

// log of the tempered mean prediction, [N, K], from the log-probability samples.
torch::Tensor log_tempered_mean(const torch::Tensor& logp, double temperature) {
  const double s = static_cast<double>(logp.size(0));
  return torch::logsumexp(torch::log_softmax(logp / temperature, 2), 0) - std::log(s);
}

double nll_of(const torch::Tensor& logp, const torch::Tensor& labels, double temperature) {
  return -log_tempered_mean(logp, temperature).gather(1, labels.view({-1, 1})).mean().item<double>();
}

}  // namespace

torch::Tensor apply_temperature(const torch::Tensor& samples, double temperature) {
  if (!(temperature > 0) || !std::isfinite(temperature)) throw Error("temperature must be a positive number");
  return torch::softmax(log_samples(samples) / temperature, 2);
}

double tempered_nll(const torch::Tensor& labels, const torch::Tensor& samples, double temperature) {
  return nll_of(log_samples(samples), labels.to(torch::kLong), temperature);
}

TemperatureFit fit_temperature(const torch::Tensor& labels_all, const torch::Tensor& samples_all) {
  auto keep = labels_all.ge(0);
  if (!keep.any().item<bool>()) throw Error("temperature scaling: no labelled samples to fit on");
  auto labels = labels_all.index({keep}).to(torch::kLong);
  auto logp = log_samples(samples_all).index({torch::indexing::Slice(), keep});
  auto f = [&](double u) { return nll_of(logp, labels, std::exp(u)); };
  const double lo = std::log(kMinTemperature), hi = std::log(kMaxTemperature);
  constexpr int kGrid = 61;
  int best = 0;
  double best_v = 0;
  for (int i = 0; i < kGrid; ++i) {
    const double v = f(lo + (hi - lo) * i / (kGrid - 1));
    if (i == 0 || v < best_v) {
      best = i;
      best_v = v;
    }
  }
  double a = lo + (hi - lo) * std::max(0, best - 1) / (kGrid - 1), b = lo + (hi - lo) * std::min(kGrid - 1, best + 1) / (kGrid - 1);
  const double r = (std::sqrt(5.0) - 1) / 2;
  double c = b - r * (b - a), d = a + r * (b - a), fc = f(c), fd = f(d);
  while (b - a > 1e-9) {
    if (fc < fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - r * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + r * (b - a);
      fd = f(d);
    }
  }
  TemperatureFit fit;
  // exp(log(20)) may round past 20; the stored value must stay inside the range its reader checks.
  fit.temperature = std::clamp(std::exp((a + b) / 2), kMinTemperature, kMaxTemperature);
  fit.nll_before = nll_of(logp, labels, 1.0);
  fit.nll_after = nll_of(logp, labels, fit.temperature);
  return fit;
}

}  // namespace drifa::calibration
