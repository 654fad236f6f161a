#include "drifa/calibration/conformal.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include <torch/torch.h>

#include "drifa/data/split.h"
#include "drifa/error.h"

namespace drifa::calibration {

const std::vector<Score>& all_scores() {
  static const std::vector<Score> s = {Score::Lac, Score::Aps, Score::ApsRandomized};
  return s;
}

std::string score_name(Score s) {
  switch (s) {
    case Score::Lac: return "lac";
    case Score::Aps: return "aps";
    case Score::ApsRandomized: return "aps_randomized";
  }
  return "?";
}

Score parse_score(const std::string& name, const std::string& source) {
  for (auto s : all_scores())
    if (score_name(s) == name) return s;
  throw Error(source + ": conformal score: found '" + name + "', allowed lac, aps, aps_randomized");
}

std::vector<double> uniform_draws(uint64_t seed, const std::vector<int64_t>& ids) {
  std::vector<double> u;
  u.reserve(ids.size());
  for (auto id : ids) {
    std::mt19937_64 rng(data::mix_seed(seed, 0xC0F, static_cast<uint64_t>(id)));
    u.push_back(std::uniform_real_distribution<double>(0.0, 1.0)(rng));
  }
  return u;
}

namespace {

torch::Tensor as_double(const torch::Tensor& probs) {
  if (probs.dim() != 2) throw Error("conformal: probabilities must be [N, K]");
  return probs.to(torch::kFloat64).contiguous();
}

// Classes by decreasing probability, ties by class index.
std::vector<int64_t> ranking(const double* row, int64_t K) {
  std::vector<int64_t> o(static_cast<size_t>(K));
  std::iota(o.begin(), o.end(), 0);
  std::stable_sort(o.begin(), o.end(), [&](int64_t a, int64_t b) { return row[a] > row[b]; });
  return o;
}

// Every class's score for one sample.
void class_scores(const double* row, int64_t K, Score score, double u, std::vector<double>& out) {
  out.assign(static_cast<size_t>(K), 0.0);
  if (score == Score::Lac) {
    for (int64_t k = 0; k < K; ++k) out[k] = 1.0 - row[k];
    return;
  }
  const double w = score == Score::Aps ? 1.0 : u;
  double before = 0;
  for (auto k : ranking(row, K)) {
    out[k] = before + w * row[k];
    before += row[k];
  }
}

void check_u(Score score, const std::vector<double>& u, int64_t n) {
  if (score == Score::ApsRandomized && static_cast<int64_t>(u.size()) != n)
    throw Error("conformal: the randomised APS score needs one uniform draw per sample");
}

}  // namespace

std::vector<double> true_class_scores(const torch::Tensor& probs, const torch::Tensor& labels, Score score,
                                      const std::vector<double>& u) {
  const auto p = as_double(probs);
  auto y = labels.to(torch::kLong).contiguous();
  const int64_t N = p.size(0), K = p.size(1);
  if (y.numel() != N) throw Error("conformal: one label per sample is needed");
  check_u(score, u, N);
  std::vector<double> s(static_cast<size_t>(N)), all;
  for (int64_t i = 0; i < N; ++i) {
    const int64_t yi = y.data_ptr<int64_t>()[i];
    if (yi < 0 || yi >= K) throw Error("conformal: label " + std::to_string(yi) + " outside the classes");
    class_scores(p.data_ptr<double>() + i * K, K, score, u.empty() ? 1.0 : u[i], all);
    s[i] = all[yi];
  }
  return s;
}

double conformal_threshold_sorted(const std::vector<double>& sorted, double alpha) {
  if (!(alpha > 0 && alpha < 1)) throw Error("conformal: alpha must be in (0, 1), got " + std::to_string(alpha));
  const double n = static_cast<double>(sorted.size());
  const auto k = static_cast<int64_t>(std::ceil((n + 1) * (1 - alpha) - 1e-12));
  if (k > static_cast<int64_t>(sorted.size()) || k < 1) return std::numeric_limits<double>::infinity();
  return sorted[static_cast<size_t>(k - 1)];
}

double conformal_threshold(std::vector<double> scores, double alpha) {
  std::sort(scores.begin(), scores.end());
  return conformal_threshold_sorted(scores, alpha);
}

torch::Tensor prediction_sets(const torch::Tensor& probs, Score score, double threshold, const std::vector<double>& u) {
  const auto p = as_double(probs);
  const int64_t N = p.size(0), K = p.size(1);
  check_u(score, u, N);
  auto sets = torch::zeros({N, K}, torch::kBool);
  auto a = sets.accessor<bool, 2>();
  std::vector<double> s;
  for (int64_t i = 0; i < N; ++i) {
    class_scores(p.data_ptr<double>() + i * K, K, score, u.empty() ? 1.0 : u[i], s);
    for (int64_t k = 0; k < K; ++k) a[i][k] = s[k] <= threshold;
  }
  return sets;
}

Coverage coverage(const torch::Tensor& sets_in, const torch::Tensor& labels_in) {
  auto sets = sets_in.to(torch::kBool).contiguous();
  auto y = labels_in.to(torch::kLong).contiguous();
  const int64_t N = sets.size(0), K = sets.size(1);
  Coverage c;
  c.class_samples.assign(static_cast<size_t>(K), 0);
  std::vector<double> hit(static_cast<size_t>(K), 0), size(static_cast<size_t>(K), 0);
  auto a = sets.accessor<bool, 2>();
  for (int64_t i = 0; i < N; ++i) {
    const int64_t yi = y.data_ptr<int64_t>()[i];
    if (yi < 0) continue;
    int64_t n = 0;
    for (int64_t k = 0; k < K; ++k) n += a[i][k];
    c.samples += 1;
    c.class_samples[yi] += 1;
    hit[yi] += a[i][yi];
    size[yi] += double(n);
  }
  const double nan = std::nan("");
  double h = 0, z = 0;
  for (int64_t k = 0; k < K; ++k) {
    h += hit[k];
    z += size[k];
    const double n = double(c.class_samples[k]);
    c.class_coverage.push_back(n > 0 ? hit[k] / n : nan);
    c.class_mean_size.push_back(n > 0 ? size[k] / n : nan);
  }
  c.coverage = c.samples > 0 ? h / double(c.samples) : nan;
  c.mean_size = c.samples > 0 ? z / double(c.samples) : nan;
  return c;
}

}  // namespace drifa::calibration
