#pragma once
// Temperature scaling (Guo et al., 2017) for every predictive method.
//
// A method's prediction is the mean of S probability samples p_s (S = 1 deterministic; MC
// passes; ensemble members; members x passes). With temperature T each sample is tempered,
// p_s^T = softmax(log p_s / T), before the mean: for the deterministic model this is exactly
// softmax(logits / T), for MC and ensembles it scales each pass's logits, as the deterministic
// case does. T is fitted on labelled samples by minimising the NLL of the tempered mean.
#include <torch/types.h>

namespace drifa::calibration {

// The temperature search range; a fit at a bound means the data asked for more.
inline constexpr double kMinTemperature = 0.05, kMaxTemperature = 20.0;

// samples [S, N, K] -> tempered samples [S, N, K] (float64).
torch::Tensor apply_temperature(const torch::Tensor& samples, double temperature);

// Mean NLL of the tempered mean prediction; labels [N] (all >= 0).
double tempered_nll(const torch::Tensor& labels, const torch::Tensor& samples, double temperature);

struct TemperatureFit {
  double temperature = 1;
  double nll_before = 0, nll_after = 0;
};

// Minimises tempered_nll over log T: a 61-point grid on [kMinTemperature, kMaxTemperature],
// then golden-section search between the best point's neighbours to 1e-9 in log T. Labels of
// -1 are skipped; throws drifa::Error when no sample is labelled.
TemperatureFit fit_temperature(const torch::Tensor& labels, const torch::Tensor& samples);

}  // namespace drifa::calibration
