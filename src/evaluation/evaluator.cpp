#include "drifa/evaluation/evaluator.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "drifa/data/split.h"
#include "drifa/error.h"
#include "drifa/inference/inferer.h"

namespace drifa::evaluation {

torch::Tensor multitask_loss(const std::vector<torch::Tensor>& logits, const std::vector<torch::Tensor>& labels,
                             const std::vector<double>& weights, const std::vector<torch::Tensor>& class_weights) {
  torch::Tensor total;
  for (size_t t = 0; t < logits.size(); ++t) {
    auto y = labels[t].to(logits[t].device());
    if (!y.ge(0).any().item<bool>()) continue;
    const double w = weights.empty() ? 1.0 / double(logits.size()) : weights[t];
    auto ce = torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-1);
    if (t < class_weights.size() && class_weights[t].defined()) ce.weight(class_weights[t].to(logits[t].device(), torch::kFloat32));
    auto l = w * torch::nn::functional::cross_entropy(logits[t].to(torch::kFloat32), y, ce);
    total = total.defined() ? total + l : l;
  }
  if (!total.defined()) total = torch::zeros({}, logits[0].options().dtype(torch::kFloat32));
  return total;
}

EvalResult evaluate(DRIFANet& net, const std::vector<data::Example>& examples, data::ImageCache& cache,
                    const EvalOptions& opt) {
  const auto& cfg = net->config();
  const size_t T = static_cast<size_t>(cfg.tasks());
  data::LoaderOptions lo;
  lo.batch_size = opt.batch_size;
  lo.workers = opt.workers;
  data::BatchLoader loader(examples, cache, lo);
  std::vector<std::vector<torch::Tensor>> probs(T), labels(T), info(T), sd(T);
  inference::Inferer inferer(net, {opt.device, opt.bf16, opt.temperatures, opt.plan});
  data::Batch b;
  while (loader.next(b)) {
    const auto pass = inferer.batch(b);
    for (size_t t = 0; t < T; ++t) {
      const auto p = inputs::by_case(pass.probs[t], pass.per_case);  // [B, K, C]
      probs[t].push_back(p.mean(1));
      labels[t].push_back(b.labels[t]);
      if (opt.plan.marginalising()) {
        const auto s = inputs::partner_spread(p.unsqueeze(0));
        info[t].push_back(s.information);
        sd[t].push_back(s.sd);
      }
    }
  }
  EvalResult res;
  res.loss = 0;
  res.aggregate = opt.aggregate;
  for (const auto& e : examples) res.groups.push_back(e.group);
  res.temperatures = opt.temperatures.empty() ? std::vector<double>(T, 1.0) : opt.temperatures;
  for (size_t t = 0; t < T; ++t) {
    res.probs.push_back(torch::cat(probs[t]));
    res.labels.push_back(torch::cat(labels[t]));
    if (opt.plan.marginalising()) {
      res.partner_information.push_back(torch::cat(info[t]));
      res.partner_sd.push_back(torch::cat(sd[t]));
    }
    auto keep = res.labels[t].ge(0);
    double l = std::nan("");
    if (keep.any().item<bool>()) {
      auto p = res.probs[t].index({keep}).clamp_min(1e-12);
      auto y = res.labels[t].index({keep});
      l = -p.log().gather(1, y.unsqueeze(1)).mean().item<double>();
      const double w = opt.task_weights.empty() ? 1.0 / double(T) : opt.task_weights[t];
      res.loss += w * l;
    }
    res.task_loss.push_back(l);
    res.metrics.push_back(compute_metrics(res.labels[t], res.probs[t]));
  }
  return res;
}

nlohmann::json task_metrics_json(const TaskMetrics& m, const torch::Tensor& labels, const torch::Tensor& probs,
                                 const std::vector<std::string>& class_names, const BootstrapOptions& ci,
                                 const std::vector<std::string>& groups, const std::string& aggregate) {
  auto j = m.to_json(class_names);
  const double ece = point_metrics(labels, probs)[4];
  j["ece"] = std::isfinite(ece) ? nlohmann::json(ece) : nlohmann::json(nullptr);
  if (const auto g = add_intervals_and_group_level(j, labels, probs, class_names, ci, groups, aggregate))
    j["group_level"]["mixed_groups"] = g->mixed;
  return j;
}

std::optional<GroupPredictions> add_intervals_and_group_level(nlohmann::json& j, const torch::Tensor& labels,
                                                              const torch::Tensor& probs,
                                                              const std::vector<std::string>& class_names,
                                                              const BootstrapOptions& ci, const std::vector<std::string>& groups,
                                                              const std::string& aggregate) {
  const bool cluster = clustered(labels, groups);
  if (!cluster) {
    if (ci.resamples > 0) j["intervals"] = intervals_json(bootstrap_intervals(labels, probs, ci), ci);
    return std::nullopt;
  }
  // One aggregation serves both: the group count does not depend on how the rows combine.
  auto g = aggregate_groups(labels, probs, groups, aggregate == "none" ? "mean" : aggregate);
  if (ci.resamples > 0)
    j["intervals"] = intervals_json(bootstrap_intervals(labels, probs, ci, groups), ci, static_cast<int64_t>(g.groups.size()));
  if (aggregate == "none") return std::nullopt;
  auto jg = task_metrics_json(compute_metrics(g.labels, g.probs), g.labels, g.probs, class_names, ci);
  jg["aggregate"] = aggregate;
  jg["groups"] = static_cast<int64_t>(g.groups.size());
  j["group_level"] = jg;
  return g;
}

nlohmann::json metrics_json(const EvalResult& r, const ModelConfig& cfg, const BootstrapOptions& ci) {
  nlohmann::json tasks = nlohmann::json::object();
  for (size_t t = 0; t < r.metrics.size(); ++t) {
    BootstrapOptions o = ci;
    o.seed = data::mix_seed(ci.seed, t);
    auto j = task_metrics_json(r.metrics[t], r.labels[t], r.probs[t], cfg.task_class_names(static_cast<int64_t>(t)), o,
                               r.groups.size() == static_cast<size_t>(r.labels[t].size(0)) ? r.groups : std::vector<std::string>{},
                               r.aggregate);
    j["loss"] = std::isnan(r.task_loss[t]) ? nlohmann::json(nullptr) : nlohmann::json(r.task_loss[t]);
    j["temperature"] = t < r.temperatures.size() ? r.temperatures[t] : 1.0;
    tasks[cfg.task_name(t)] = j;
  }
  return {{"loss", r.loss}, {"tasks", tasks}};
}

}  // namespace drifa::evaluation
