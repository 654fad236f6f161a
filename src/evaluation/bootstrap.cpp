#include "drifa/evaluation/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <map>
#include <random>
#include <unordered_map>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "drifa/data/split.h"
#include "drifa/error.h"

namespace drifa::evaluation {

double quantile_sorted(const std::vector<double>& v, double q) {
  if (v.empty()) return std::nan("");
  const double pos = q * double(v.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - double(lo)) * (v[hi] - v[lo]);
}

namespace {

// One task's data, prepared once so each resample costs O(N K): predictions, confidences and
// their bins, and per class the samples in ascending score order grouped by ties (for ROC-AUC).
struct Prepared {
  int64_t n = 0, k = 0;
  std::vector<int64_t> y, pred;
  std::vector<double> conf;
  std::vector<int> bin;
  std::vector<int64_t> auc_classes;
  std::vector<std::vector<int64_t>> order;       // per AUC class: sample indices by ascending score
  std::vector<std::vector<size_t>> group_start;  // per AUC class: where each tie group starts in order
  std::vector<std::vector<int64_t>> by_class;    // samples of each true class
  // The resampled units per stratum (a true class, or a group's majority label): each unit its
  // samples. Without groups, each sample is a unit in its class, in index order.
  std::vector<std::vector<std::vector<int64_t>>> units;
  int64_t groups = 0;
};

Prepared prepare(const torch::Tensor& y_in, const torch::Tensor& p_in, int bins, const std::vector<std::string>& groups = {}) {
  if (p_in.dim() != 2 || y_in.dim() != 1 || y_in.size(0) != p_in.size(0))
    throw Error("bootstrap: need labels [N] and probabilities [N, K]");
  if (!groups.empty() && groups.size() != static_cast<size_t>(y_in.size(0)))
    throw Error("bootstrap: need one group per row (" + std::to_string(y_in.size(0)) + "), got " + std::to_string(groups.size()));
  auto keep = y_in.ge(0);
  std::vector<std::string> kept_groups;
  if (!groups.empty()) {
    const auto yk = y_in.to(torch::kLong).contiguous();
    for (int64_t i = 0; i < yk.size(0); ++i)
      if (yk.data_ptr<int64_t>()[i] >= 0) kept_groups.push_back(groups[static_cast<size_t>(i)]);
  }
  auto y = y_in.index({keep}).to(torch::kLong).contiguous();
  auto p = p_in.index({keep}).to(torch::kDouble).contiguous();
  Prepared d;
  d.n = y.size(0);
  d.k = p.size(1);
  const double* pp = p.data_ptr<double>();
  d.y.assign(y.data_ptr<int64_t>(), y.data_ptr<int64_t>() + d.n);
  d.by_class.resize(static_cast<size_t>(d.k));
  for (int64_t i = 0; i < d.n; ++i) {
    if (d.y[i] >= d.k) throw Error("bootstrap: label " + std::to_string(d.y[i]) + " >= classes " + std::to_string(d.k));
    const double* row = pp + i * d.k;
    const int64_t best = std::max_element(row, row + d.k) - row;  // the first maximum, as argmax
    d.pred.push_back(best);
    d.conf.push_back(row[best]);
    d.bin.push_back(std::isfinite(row[best]) ? std::clamp(static_cast<int>(row[best] * bins), 0, bins - 1) : -1);
    d.by_class[static_cast<size_t>(d.y[i])].push_back(i);
  }
  for (int64_t c = (d.k == 2 ? 1 : 0); c < d.k; ++c) {
    std::vector<int64_t> o(static_cast<size_t>(d.n));
    std::iota(o.begin(), o.end(), 0);
    std::stable_sort(o.begin(), o.end(), [&](int64_t a, int64_t b) { return pp[a * d.k + c] < pp[b * d.k + c]; });
    std::vector<size_t> g;
    for (size_t i = 0; i < o.size(); ++i)
      if (i == 0 || pp[o[i] * d.k + c] != pp[o[i - 1] * d.k + c]) g.push_back(i);
    d.auc_classes.push_back(c);
    d.order.push_back(std::move(o));
    d.group_start.push_back(std::move(g));
  }
  d.units.resize(static_cast<size_t>(d.k));
  if (kept_groups.empty()) {
    for (int64_t c = 0; c < d.k; ++c)
      for (auto i : d.by_class[static_cast<size_t>(c)]) d.units[static_cast<size_t>(c)].push_back({i});
    d.groups = d.n;
  } else {
    std::vector<int64_t> y64(d.y.begin(), d.y.end());
    const auto gi = data::index_groups(y64, kept_groups);
    for (size_t g = 0; g < gi.members.size(); ++g) {
      std::vector<int64_t> m(gi.members[g].begin(), gi.members[g].end());
      d.units[static_cast<size_t>(gi.label[g])].push_back(std::move(m));
    }
    d.groups = static_cast<int64_t>(gi.members.size());
  }
  return d;
}

// The metrics of one weighting (w[i] = how often sample i was drawn), NaN where undefined.
std::vector<double> metrics(const Prepared& d, const std::vector<double>& w, int bins) {
  const auto K = static_cast<size_t>(d.k);
  std::vector<double> tp(K, 0), predicted(K, 0), support(K, 0), bin_gap(static_cast<size_t>(bins), 0);
  double total = 0, correct = 0;
  bool finite = true;
  for (int64_t i = 0; i < d.n; ++i) {
    if (w[i] == 0) continue;
    const auto y = static_cast<size_t>(d.y[i]), p = static_cast<size_t>(d.pred[i]);
    const double ok = y == p ? 1.0 : 0.0;
    total += w[i];
    correct += w[i] * ok;
    support[y] += w[i];
    predicted[p] += w[i];
    tp[y] += w[i] * ok;
    if (d.bin[i] < 0) finite = false;
    else bin_gap[static_cast<size_t>(d.bin[i])] += w[i] * (ok - d.conf[i]);
  }
  double f1 = 0, recall_sum = 0, present = 0;
  for (size_t c = 0; c < K; ++c) {
    const double prec = predicted[c] > 0 ? tp[c] / predicted[c] : 0.0, rec = support[c] > 0 ? tp[c] / support[c] : 0.0;
    f1 += prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0.0;
    if (support[c] > 0) {
      recall_sum += rec;
      present += 1;
    }
  }
  double auc_sum = 0, auc_n = 0;
  for (size_t a = 0; a < d.auc_classes.size(); ++a) {
    const int64_t c = d.auc_classes[a];
    const auto& o = d.order[a];
    const auto& g = d.group_start[a];
    double neg_below = 0, pos_total = 0, u = 0;
    for (size_t gi = 0; gi < g.size(); ++gi) {
      const size_t end = gi + 1 < g.size() ? g[gi + 1] : o.size();
      double pos = 0, neg = 0;
      for (size_t j = g[gi]; j < end; ++j) (d.y[o[j]] == c ? pos : neg) += w[o[j]];
      u += pos * (neg_below + 0.5 * neg);  // ties count one half, as average ranks do
      neg_below += neg;
      pos_total += pos;
    }
    if (pos_total > 0 && neg_below > 0) {
      auc_sum += u / (pos_total * neg_below);
      auc_n += 1;
    }
  }
  double ece = 0;
  for (double gsum : bin_gap) ece += std::abs(gsum);
  const double nan = std::nan("");
  return {total > 0 ? correct / total : nan, present > 0 ? recall_sum / present : nan, total > 0 ? f1 / double(K) : nan,
          auc_n > 0 ? auc_sum / auc_n : nan, finite && total > 0 ? ece / total : nan};
}

}  // namespace

bool clustered(const torch::Tensor& y_true, const std::vector<std::string>& groups) {
  if (groups.empty()) return false;
  const auto y = y_true.to(torch::kLong).contiguous();
  std::unordered_map<std::string, int> seen;
  for (int64_t i = 0; i < y.size(0); ++i)
    if (y.data_ptr<int64_t>()[i] >= 0 && !groups[static_cast<size_t>(i)].empty() && ++seen[groups[static_cast<size_t>(i)]] > 1)
      return true;
  return false;
}

Intervals bootstrap_intervals(const torch::Tensor& y_true, const torch::Tensor& probs, const BootstrapOptions& opt,
                              const std::vector<std::string>& groups) {
  if (opt.resamples < 1) throw Error("bootstrap: resamples must be at least 1");
  if (!(opt.level > 0 && opt.level < 1)) throw Error("bootstrap: level must be in (0, 1)");
  const auto d = prepare(y_true, probs, opt.ece_bins, groups);
  const auto& names = bootstrap_metrics();
  Intervals out;
  if (d.n == 0) return out;
  std::vector<std::vector<double>> values(names.size());
  std::mt19937_64 rng(data::mix_seed(opt.seed, 0xB007));
  std::vector<double> w(static_cast<size_t>(d.n));
  for (int b = 0; b < opt.resamples; ++b) {
    std::fill(w.begin(), w.end(), 0.0);
    for (const auto& units : d.units) {
      if (units.empty()) continue;
      std::uniform_int_distribution<size_t> pick(0, units.size() - 1);
      for (size_t j = 0; j < units.size(); ++j)
        for (auto i : units[pick(rng)]) w[static_cast<size_t>(i)] += 1;
    }
    const auto m = metrics(d, w, opt.ece_bins);
    for (size_t i = 0; i < names.size(); ++i)
      if (std::isfinite(m[i])) values[i].push_back(m[i]);
  }
  const double a = (1 - opt.level) / 2;
  for (size_t i = 0; i < names.size(); ++i) {
    if (values[i].empty()) continue;
    std::sort(values[i].begin(), values[i].end());
    out.push_back({names[i], {quantile_sorted(values[i], a), quantile_sorted(values[i], 1 - a)}});
  }
  return out;
}

std::vector<double> point_metrics(const torch::Tensor& y_true, const torch::Tensor& probs, int ece_bins) {
  const auto d = prepare(y_true, probs, ece_bins);
  return metrics(d, std::vector<double>(static_cast<size_t>(d.n), 1.0), ece_bins);
}

nlohmann::json intervals_json(const Intervals& ci, const BootstrapOptions& opt, int64_t groups) {
  nlohmann::json j = {{"scheme", groups > 0 ? "cluster bootstrap over groups, stratified by the group's label, percentile"
                                            : "stratified bootstrap, percentile"},
                      {"resamples", opt.resamples},
                      {"level", opt.level},
                      {"seed", opt.seed}};
  if (groups > 0) j["groups"] = groups;
  for (const auto& [name, iv] : ci) j[name] = {iv.low, iv.high};
  return j;
}

}  // namespace drifa::evaluation
