#include "drifa/calibration/calibration.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "drifa/calibration/temperature.h"
#include "drifa/data/split.h"
#include "drifa/error.h"
#include "drifa/evaluation/scores.h"
#include "drifa/inference/method.h"
#include "drifa/io/settings.h"

namespace drifa::calibration {

std::vector<double> part_draws(uint64_t seed, Part part, const std::vector<int64_t>& ids) {
  return uniform_draws(data::mix_seed(seed, static_cast<uint64_t>(part)), ids);
}

std::string alpha_key(double alpha) {
  std::ostringstream o;
  o << alpha;
  return o.str();
}

double MethodCalibration::threshold(Score s, double alpha) const {
  return conformal_threshold_sorted(scores.at(static_cast<size_t>(s)), alpha);
}

const MethodCalibration* Calibration::find(const std::string& task, const std::string& method) const {
  auto t = tasks.find(task);
  if (t == tasks.end()) return nullptr;
  auto m = t->second.find(method);
  return m == t->second.end() ? nullptr : &m->second;
}

torch::Tensor calibrate(const torch::Tensor& samples, const MethodCalibration* cal) {
  return apply_temperature(samples, cal ? cal->temperature : 1.0);
}

std::vector<int64_t> labelled_positions(const torch::Tensor& labels) {
  auto y = labels.to(torch::kLong).contiguous();
  std::vector<int64_t> pos;
  for (int64_t i = 0; i < y.numel(); ++i)
    if (y.data_ptr<int64_t>()[i] >= 0) pos.push_back(i);
  return pos;
}

MethodCalibration fit_method(const torch::Tensor& labels_all, const torch::Tensor& samples_all, const std::vector<int64_t>& ids_all,
                             uint64_t seed, const std::vector<std::string>& groups) {
  auto keep = labels_all.ge(0);
  auto labels = labels_all.index({keep});
  auto samples = samples_all.index({torch::indexing::Slice(), keep});
  std::vector<int64_t> ids;
  for (auto i : labelled_positions(labels_all)) ids.push_back(ids_all[static_cast<size_t>(i)]);
  const auto fit = fit_temperature(labels, samples);
  MethodCalibration m;
  m.temperature = fit.temperature;
  m.samples = labels.size(0);
  const auto before = samples.to(torch::kFloat64).mean(0);
  const auto after = apply_temperature(samples, fit.temperature).mean(0);
  m.nll_before = evaluation::nll(labels, before);
  m.nll_after = evaluation::nll(labels, after);
  m.ece_before = evaluation::reliability(labels, before).ece;
  m.ece_after = evaluation::reliability(labels, after).ece;
  m.brier_before = evaluation::brier(labels, before);
  m.brier_after = evaluation::brier(labels, after);
  const auto u = part_draws(seed, Part::Calibration, ids);
  // One image per group when rows share groups (the groups of labelled rows, in row order).
  std::vector<int64_t> chosen;
  if (!groups.empty()) {
    std::vector<std::string> g;
    std::vector<int64_t> y;
    for (auto i : labelled_positions(labels_all)) {
      g.push_back(groups.at(static_cast<size_t>(i)));
      y.push_back(0);
    }
    const auto gi = data::index_groups(y, g);
    if (gi.members.size() < g.size()) {
      std::mt19937_64 rng(data::mix_seed(seed, 0x6C0F));
      for (const auto& mem : gi.members) {
        std::uniform_int_distribution<size_t> pick(0, mem.size() - 1);
        chosen.push_back(static_cast<int64_t>(mem[pick(rng)]));
      }
      m.groups = static_cast<int64_t>(chosen.size());
    }
  }
  for (auto s : all_scores()) {
    auto v = true_class_scores(after, labels, s, u);
    if (!chosen.empty()) {
      std::vector<double> one;
      for (auto i : chosen) one.push_back(v[static_cast<size_t>(i)]);
      v = std::move(one);
    }
    std::sort(v.begin(), v.end());
    m.scores.push_back(std::move(v));
  }
  if (!chosen.empty()) m.samples = static_cast<int64_t>(chosen.size());
  return m;
}

nlohmann::json Calibration::to_json() const {
  nlohmann::json jt = nlohmann::json::object();
  for (const auto& [task, by_method] : tasks)
    for (const auto& [method, m] : by_method) {
      nlohmann::json sc = nlohmann::json::object();
      for (auto s : all_scores()) sc[score_name(s)] = m.scores.at(static_cast<size_t>(s));
      jt[task][method] = {{"temperature", m.temperature}, {"samples", m.samples},
                          {"nll_before", m.nll_before},   {"nll_after", m.nll_after},
                          {"ece_before", m.ece_before},   {"ece_after", m.ece_after},
                          {"brier_before", m.brier_before}, {"brier_after", m.brier_after},
                          {"scores", sc}};
      if (m.groups > 0) jt[task][method]["groups"] = m.groups;
    }
  nlohmann::json j = {{"part", part}, {"models", models}, {"passes", passes}, {"seed", seed},
                      {"alpha", alpha}, {"score", score_name(score)}, {"tasks", jt}};
  if (!weights.empty()) j["weights"] = weights;
  return j;
}

Calibration Calibration::from_json(const nlohmann::json& j, const std::string& source) {
  namespace L = settings::limits;
  settings::Table t(j, source);
  t.require({"part", "models", "passes", "seed", "alpha", "score", "tasks"});
  Calibration c;
  c.part = t.choice("part", "val", {"val", "test"});
  c.models = t.integer("models", 1, L::kEnsembleMembers);
  c.passes = t.integer("passes", 0, L::kPasses);
  c.seed = static_cast<uint64_t>(t.integer("seed", 0, L::kSeed));
  c.alpha = t.real("alpha", 0.1, L::kAlpha);
  c.score = parse_score(t.choice("score", "lac", {"lac", "aps", "aps_randomized"}), source);
  if (t.has("weights")) {
    c.weights = t.names("weights", {}, {1, L::kEnsembleMembers.hi}, false);
    if (static_cast<int64_t>(c.weights.size()) != c.models)
      t.fail("weights", "found " + std::to_string(c.weights.size()) + " fingerprints, allowed one per model (" +
                            std::to_string(c.models) + ")");
  }
  std::vector<std::string> task_names;
  const auto& jt = t.raw("tasks");
  if (!jt.is_object()) t.fail("tasks", "found " + settings::show(jt) + ", allowed an object of tasks");
  for (auto it = jt.begin(); it != jt.end(); ++it) task_names.push_back(it.key());
  auto tasks = t.table("tasks");
  for (const auto& task : task_names) {
    settings::check_name(source, "tasks", task);
    auto tt = tasks.table(task.c_str());
    for (const auto* m_ : inference::methods()) {
      const auto method = m_->name();
      if (!tt.has(method.c_str())) continue;
      auto mt = tt.table(method.c_str());
      mt.require({"temperature", "samples", "scores"});
      MethodCalibration m;
      m.temperature = mt.real("temperature", 1, L::kTemperature);
      m.samples = mt.integer("samples", 0, L::kCalibrationScores);
      m.groups = mt.integer("groups", 0, L::kCalibrationScores);
      if (m.groups > 0 && m.groups != m.samples)
        mt.fail("groups", "found " + std::to_string(m.groups) + ", allowed the number of scores (" + std::to_string(m.samples) + ")");
      // Reported numbers, not used in computation: null (a NaN when written) reads as NaN.
      const settings::RealRange any{0.0, 1e300};
      auto reported = [&](const char* key) { return mt.real_or_null(key, any).value_or(std::nan("")); };
      m.nll_before = reported("nll_before");
      m.nll_after = reported("nll_after");
      m.ece_before = reported("ece_before");
      m.ece_after = reported("ece_after");
      m.brier_before = reported("brier_before");
      m.brier_after = reported("brier_after");
      auto st = mt.table("scores");
      for (auto s : all_scores()) {
        const auto name = score_name(s);
        auto v = st.reals(name.c_str(), {}, {-1.0, 2.0}, {m.samples, m.samples});
        if (!std::is_sorted(v.begin(), v.end())) st.fail(name, "found scores out of order, allowed ascending scores");
        m.scores.push_back(std::move(v));
      }
      st.finish();
      mt.finish();
      c.tasks[task][method] = std::move(m);
    }
    tt.finish();
  }
  tasks.finish();
  t.finish();
  return c;
}

void Calibration::check_weights(const std::vector<std::string>& now, const std::string& source) const {
  if (weights.empty()) return;
  if (weights == now) return;
  size_t k = 0;
  while (k < weights.size() && k < now.size() && weights[k] == now[k]) ++k;
  throw Error(source + ": fitted on other model weights than the folder holds now (model " + std::to_string(k) + ": " +
              (k < weights.size() ? weights[k] : "none") + " then, " + (k < now.size() ? now[k] : "none") +
              " now); the models changed after `drifa calibrate`: run it again");
}

nlohmann::json conformal_summary(const MethodCalibration& cal, const torch::Tensor& probs, const torch::Tensor& labels,
                                 const std::vector<double>& u, const std::vector<double>& alphas,
                                 const std::vector<std::string>& names) {
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json out = nlohmann::json::object();
  for (double a : alphas) {
    nlohmann::json ja = nlohmann::json::object();
    for (auto s : all_scores()) {
      const double q = cal.threshold(s, a);
      const auto cov = coverage(prediction_sets(probs, s, q, u), labels);
      nlohmann::json per = nlohmann::json::object();
      for (size_t k = 0; k < cov.class_samples.size(); ++k)
        per[k < names.size() ? names[k] : std::to_string(k)] = {
            {"samples", cov.class_samples[k]}, {"coverage", num(cov.class_coverage[k])}, {"mean_size", num(cov.class_mean_size[k])}};
      ja[score_name(s)] = {{"threshold", num(q)},       {"calibration_samples", cal.samples}, {"samples", cov.samples},
                           {"coverage", num(cov.coverage)}, {"mean_size", num(cov.mean_size)}, {"per_class", per}};
    }
    out[alpha_key(a)] = ja;
  }
  return out;
}

}  // namespace drifa::calibration
