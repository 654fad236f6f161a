#include "drifa/uncertainty/study.h"

#include <chrono>
#include <cmath>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "drifa/data/csv.h"
#include "drifa/data/split.h"
#include "drifa/error.h"
#include "drifa/evaluation/evaluator.h"
#include "drifa/io/atomic_file.h"
#include "drifa/runs/tables.h"
#include "drifa/inference/inferer.h"
#include "drifa/inference/method.h"
#include "drifa/runtime/progress.h"
#include "drifa/uncertainty/measures.h"

namespace drifa::uncertainty {

namespace {

// [S, B * P, C] -> [S, B, C]: each sample averaged over a case's P partner rows.
torch::Tensor partner_mean(const torch::Tensor& rows, int64_t P) {
  return rows.view({rows.size(0), -1, P, rows.size(2)}).mean(2);
}

}  // namespace

StudySamples sample_models(std::vector<DRIFANet>& nets, const std::vector<data::Example>& examples,
                           data::ImageCache& cache, const StudyOptions& opt) {
  if (nets.empty()) throw Error("the uncertainty study needs at least one model");
  if (examples.empty()) throw Error("the uncertainty study needs at least one example");
  const auto& cfg = nets[0]->config();
  const size_t T = static_cast<size_t>(cfg.tasks()), K = nets.size();
  for (auto& n : nets)
    if (n->config().to_json() != cfg.to_json())
      throw Error("the ensemble's models have different configurations");
  data::LoaderOptions lo;
  lo.batch_size = opt.batch_size;
  lo.workers = opt.workers;
  data::BatchLoader loader(examples, cache, lo);
  std::vector<std::vector<std::vector<torch::Tensor>>> det(K, std::vector<std::vector<torch::Tensor>>(T)),
      mc(K, std::vector<std::vector<torch::Tensor>>(T));
  std::vector<std::vector<torch::Tensor>> labels(T), info(T), sd(T);
  std::map<std::string, std::vector<std::vector<std::vector<torch::Tensor>>>> own;  // method -> [model][task][batch]
  // Each inferer checks the input plan against the model: a bad plan fails before any work.
  std::vector<inference::Inferer> inferers;
  for (auto& n : nets) inferers.emplace_back(n, inference::InferOptions{opt.device, opt.mc.bf16, {}, opt.plan});
  StudySamples s;
  Progress bar("uncertainty (" + std::to_string(K) + " models x " + std::to_string(opt.mc.passes) + " passes)",
               loader.batches(), opt.quiet);
  data::Batch b;
  size_t step = 0;
  while (loader.next(b)) {
    for (size_t t = 0; t < T; ++t) labels[t].push_back(b.labels[t]);
    for (size_t k = 0; k < K; ++k) {
      const auto pass = inferers[k].batch(b);
      const int64_t P = pass.per_case;
      for (size_t t = 0; t < T; ++t) {
        const auto p = inputs::by_case(pass.probs[t], P);  // [B, P, C]
        det[k][t].push_back(p.mean(1));
        if (k == 0 && opt.plan.marginalising()) {
          const auto sp = inputs::partner_spread(p.unsqueeze(0));
          info[t].push_back(sp.information);
          sd[t].push_back(sp.sd);
        }
      }
      inference::MCOptions mo = opt.mc;
      mo.seed = data::mix_seed(opt.mc.seed, static_cast<uint64_t>(k));
      const auto t0 = std::chrono::steady_clock::now();
      auto p = inferers[k].mc(pass, mo);
      s.mc_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (size_t t = 0; t < T; ++t) mc[k][t].push_back(partner_mean(p[t], P));
      for (const auto* method : inference::methods()) {
        if (!method->draws(opt.draw)) continue;
        auto& mine = own[method->name()];
        mine.resize(K, std::vector<std::vector<torch::Tensor>>(T));
        inference::DrawOptions draw = opt.draw;
        draw.mc = mo;  // this model's seed
        const auto d = method->draw(inferers[k], pass, draw);
        for (size_t t = 0; t < T; ++t) mine[k][t].push_back(partner_mean(d[t], P));
      }
    }
    bar.update(++step, b.indices.size(), std::nan(""));
  }
  bar.finish("");
  for (size_t t = 0; t < T; ++t) {
    s.labels.push_back(torch::cat(labels[t]));
    if (opt.plan.marginalising()) {
      s.partner_information.push_back(torch::cat(info[t]));
      s.partner_sd.push_back(torch::cat(sd[t]));
    }
  }
  for (auto& [name, per_model] : own)
    for (auto& per_task : per_model) {
      s.own[name].emplace_back();
      for (auto& batches : per_task) s.own[name].back().push_back(torch::cat(batches, 1));
    }
  s.views = opt.draw.tta.views;
  s.views_mc = opt.draw.tta.mc;
  s.deterministic.resize(K);
  s.mc.resize(K);
  for (size_t k = 0; k < K; ++k)
    for (size_t t = 0; t < T; ++t) {
      s.deterministic[k].push_back(torch::cat(det[k][t], 0));
      s.mc[k].push_back(torch::cat(mc[k][t], 1));
    }
  return s;
}

inference::TaskSamples task_samples(const StudySamples& s, size_t t) {
  inference::TaskSamples ts;
  for (const auto& m : s.deterministic) ts.deterministic.push_back(m[t]);
  for (const auto& m : s.mc) ts.mc.push_back(m[t]);
  for (const auto& [name, per_model] : s.own)
    for (const auto& m : per_model) ts.own[name].push_back(m[t]);
  return ts;
}

inference::Counts StudySamples::counts() const {
  return {static_cast<int64_t>(mc.size()), mc.empty() || mc[0].empty() ? 0 : mc[0][0].size(0), views, views_mc};
}

std::vector<std::pair<std::string, torch::Tensor>> method_samples(const StudySamples& s, size_t t) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  const auto ts = task_samples(s, t);
  for (const auto* m : inference::methods())
    if (m->available(s.counts())) out.emplace_back(m->name(), m->samples(ts));
  return out;
}

nlohmann::json summarise(const StudySamples& s, const ModelConfig& cfg, const SummaryOptions& opt) {
  nlohmann::json tasks = nlohmann::json::object();
  const size_t K = s.mc.size();
  for (size_t t = 0; t < s.labels.size(); ++t) {
    const auto task = cfg.task_name(static_cast<int64_t>(t));
    const auto names = cfg.task_class_names(static_cast<int64_t>(t));
    nlohmann::json j;
    for (const auto& [method, samples] : method_samples(s, t)) {
      const auto* cal = opt.calibration ? opt.calibration->find(task, method) : nullptr;
      if (!cal) {
        j[method] = task_summary(s.labels[t], samples, names, opt.coverages, opt.ci, opt.groups, opt.aggregate);
        j[method]["temperature"] = nullptr;
        continue;
      }
      const auto tempered = calibration::calibrate(samples, cal);
      auto sum = task_summary(s.labels[t], tempered, names, opt.coverages, opt.ci, opt.groups, opt.aggregate);
      sum["temperature"] = cal->temperature;
      const auto keep = s.labels[t].ge(0);
      const auto y = s.labels[t].index({keep});
      if (y.size(0) > 0) {
        const auto raw = samples.index({torch::indexing::Slice(), keep}).to(torch::kFloat64).mean(0);
        const auto rel = reliability(y, raw, 15);
        sum["before_calibration"] = {{"nll", nll(y, raw)}, {"brier", brier(y, raw)}, {"ece", rel.ece}, {"reliability", reliability_json(rel)}};
        const auto ids = calibration::labelled_positions(s.labels[t]);
        const auto probs = tempered.index({torch::indexing::Slice(), keep}).mean(0);
        sum["conformal"] = calibration::conformal_summary(*cal, probs, y, calibration::part_draws(opt.seed, calibration::Part::Test, ids),
                                                          opt.alphas, names);
      }
      j[method] = sum;
    }
    tasks[task] = j;
  }
  nlohmann::json out = {{"models", K}, {"passes", s.mc.empty() ? 0 : s.mc[0][0].size(0)}, {"tasks", tasks}};
  if (s.views > 0) out["views"] = s.views;  // test-time augmentation
  if (!s.partner_information.empty()) {
    nlohmann::json spread = nlohmann::json::object();
    for (size_t t = 0; t < s.labels.size(); ++t) {
      const auto keep = s.labels[t].ge(0);
      if (!keep.any().item<bool>()) continue;
      spread[cfg.task_name(static_cast<int64_t>(t))] = {{"information", s.partner_information[t].index({keep}).mean().item<double>()},
                                                        {"sd", s.partner_sd[t].index({keep}).mean().item<double>()}};
    }
    out["partner_spread"] = spread;
  }
  if (opt.calibration) out["calibration"] = {{"part", opt.calibration->part}, {"passes", opt.calibration->passes},
                                             {"models", opt.calibration->models}, {"alphas", opt.alphas}};
  else out["calibration"] = nullptr;
  return out;
}

void write_samples_csv(const std::string& path, const StudySamples& s, const std::vector<data::Example>& examples,
                       const ModelConfig& cfg, const calibration::Calibration* cal) {
  std::ostringstream o;
  namespace f = runs::files;
  o << f::sample_csv_header(cfg, {f::kColTrueLabel, f::kColPredictedLabel, f::kColCorrect, f::kColPredictiveEntropy,
                                  f::kColExpectedEntropy, f::kColMutualInformation, f::kColSpread});
  for (size_t t = 0; t < s.labels.size(); ++t) {
    // The method predict answers with for these models and passes: ensemble, else mc.
    const auto c = s.counts();
    const auto& final_method = inference::method_for({c.models, c.passes, 0, false});
    const auto method = final_method.name();
    const auto samples = final_method.samples(task_samples(s, t));
    const auto* mc = cal ? cal->find(cfg.task_name(static_cast<int64_t>(t)), method) : nullptr;
    const auto m = sample_measures(mc ? calibration::calibrate(samples, mc) : samples);
    auto y = s.labels[t].accessor<int64_t, 1>();
    auto pred = m.predicted.accessor<int64_t, 1>();
    const auto p = m.mean.contiguous();
    auto pe = m.predictive_entropy.accessor<double, 1>(), ee = m.expected_entropy.accessor<double, 1>(),
         mi = m.mutual_information.accessor<double, 1>(), sp = m.spread.accessor<double, 1>();
    for (int64_t i = 0; i < y.size(0); ++i) {
      if (y[i] < 0) continue;
      const auto ti = static_cast<int64_t>(t);
      std::ostringstream cols;
      cols << data::csv_escape(cfg.class_name(ti, y[i])) << "," << data::csv_escape(cfg.class_name(ti, pred[i])) << ","
           << (y[i] == pred[i] ? 1 : 0) << "," << pe[i] << "," << ee[i] << "," << mi[i] << "," << sp[i];
      f::sample_csv_row(o, cfg, i, ti, examples[static_cast<size_t>(i)], cols.str(), p.data_ptr<float>() + i * p.size(1), p.size(1));
    }
  }
  io::atomic_write_text(path, o.str());
}

}  // namespace drifa::uncertainty
