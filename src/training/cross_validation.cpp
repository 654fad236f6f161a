#include "drifa/training/cross_validation.h"

#include <cmath>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "drifa/data/split.h"
#include "drifa/error.h"
#include "drifa/evaluation/bootstrap.h"
#include "drifa/io/atomic_file.h"
#include "drifa/io/folder_lock.h"
#include "drifa/io/settings.h"
#include "drifa/runs/tables.h"
#include "drifa/runs/files.h"
#include "drifa/runs/run_folder.h"

namespace fs = std::filesystem;

namespace drifa::training {

void train_folds(const runs::RunConfig& cfg, const std::string& dir, int folds, const TrainOptions& opt, const DistributedEnv& ranks) {
  settings::check_integer("command line", "--folds", folds, settings::limits::kFolds);
  std::optional<io::FolderLock> lock;  // rank 0 writes cv.json; each rank locks the folds it trains
  if (ranks.rank == 0) lock.emplace(dir);
  else fs::create_directories(dir);
  const auto manifest = runs::files::path(dir, runs::files::kCv);
  nlohmann::json names = nlohmann::json::array();
  for (int f = 0; f < folds; ++f) names.push_back("fold-" + std::to_string(f));
  const nlohmann::json j = {{"config", cfg.to_json()}, {"folds", folds}, {"members", names}};
  if (fs::exists(manifest)) {
    const auto old = runs::files::read_cv(dir);
    if (old.config != j["config"] || old.folds != folds)
      throw Error(dir + ": holds a cross-validation of another configuration or fold count (cv.json); choose another folder");
  }
  if (ranks.rank == 0) io::atomic_write_text(manifest, j.dump(2));
  const auto all = data::prepare_data(cfg.data, cfg.seed);
  for (int f = 0; f < folds; ++f) {
    if (f % ranks.world_size != ranks.rank) continue;
    const auto run = runs::files::path(dir, names[f].get<std::string>());
    if (fs::exists(runs::files::path(run, runs::files::kDone))) {
      if (!opt.quiet) std::cerr << "fold " << f << ": already trained (" << run << ")\n";
      continue;
    }
    const auto split = data::cv_fold(all, folds, f, cfg.data.val_fraction, cfg.seed);
    TrainOptions o = opt;
    o.resume = fs::exists(runs::files::path(run, runs::files::kCheckpoint));
    o.data = &split;
    if (!opt.quiet)
      std::cerr << "fold " << f + 1 << "/" << folds << (o.resume ? " (resuming)" : "")
                << (ranks.active() ? " on rank " + std::to_string(ranks.rank) : std::string()) << "\n";
    train(cfg, run, o);
  }
}

std::vector<std::string> fold_runs(const std::string& dir) {
  const auto m = runs::files::read_cv(dir);
  std::vector<std::string> runs;
  for (const auto& n : m.members) {
    const auto run = runs::files::path(dir, n);
    if (!fs::exists(runs::files::path(run, runs::files::kDone)))
      throw Error(run + ": this fold has not finished training; run `drifa cv` again to complete it");
    runs.push_back(run);
  }
  return runs;
}

namespace {

// Point metrics and (with ci.resamples > 0) intervals of one task's labels and probabilities.
nlohmann::json task_metrics(const torch::Tensor& y, const torch::Tensor& p, const std::vector<std::string>& names,
                            const evaluation::BootstrapOptions& ci, const std::vector<std::string>& groups = {},
                            const std::string& aggregate = "none") {
  return evaluation::task_metrics_json(evaluation::compute_metrics(y, p), y, p, names, ci, groups, aggregate);
}

}  // namespace

nlohmann::json summarise_folds(const std::string& dir, torch::Device device, const evaluation::BootstrapOptions& ci) {
  const io::FolderLock lock(dir);
  const auto runs = fold_runs(dir);
  const auto first = runs::RunFolder::open(runs[0]);
  const auto all = data::prepare_data(first.cfg.data, first.cfg.seed);
  const auto holdout_examples = all.eval_examples("test", first.cfg.seed);  // the config's test part, scored by every fold model
  data::ImageCache cache(first.cfg.data.image_options());
  std::vector<data::Example> pooled_examples;
  evaluation::EvalResult pooled;
  std::vector<std::vector<torch::Tensor>> holdout_probs;  // [fold][task]
  std::vector<torch::Tensor> holdout_labels;
  std::vector<evaluation::EvalResult> per_fold;
  ModelConfig mc;
  for (const auto& run_dir : runs) {
    const auto run = runs::RunFolder::open(run_dir);
    auto net = run.load_model(run.best_model());
    net->to(device);
    mc = net->config();
    evaluation::EvalOptions eo;
    eo.batch_size = run.cfg.train.batch_size;
    eo.workers = run.cfg.data.workers;
    eo.device = device;
    eo.task_weights = run.cfg.train.task_weights;
    const auto oof = run.examples("test");
    per_fold.push_back(evaluation::evaluate(net, oof, cache, eo));
    pooled_examples.insert(pooled_examples.end(), oof.begin(), oof.end());
    if (!holdout_examples.empty()) {
      auto h = evaluation::evaluate(net, holdout_examples, cache, eo);
      holdout_probs.push_back(h.probs);
      holdout_labels = h.labels;
    }
  }
  const size_t T = static_cast<size_t>(mc.tasks());
  pooled.temperatures.assign(T, 1.0);
  for (const auto& e : pooled_examples) pooled.groups.push_back(e.group);
  std::vector<std::string> holdout_groups;
  for (const auto& e : holdout_examples) holdout_groups.push_back(e.group);
  for (size_t t = 0; t < T; ++t) {
    std::vector<torch::Tensor> y, p;
    for (const auto& r : per_fold) {
      y.push_back(r.labels[t]);
      p.push_back(r.probs[t]);
    }
    pooled.labels.push_back(torch::cat(y));
    pooled.probs.push_back(torch::cat(p));
    pooled.metrics.push_back(evaluation::compute_metrics(pooled.labels[t], pooled.probs[t]));
    pooled.task_loss.push_back(std::nan(""));
  }
  runs::files::write_predictions(runs::files::path(dir, runs::files::kPredictions), pooled, pooled_examples, mc);

  evaluation::BootstrapOptions none;  // per-fold and per-model rows: point metrics only
  none.resamples = 0;
  nlohmann::json tasks = nlohmann::json::object();
  for (size_t t = 0; t < T; ++t) {
    const auto ti = static_cast<int64_t>(t);
    const auto names = mc.task_class_names(ti);
    nlohmann::json folds = nlohmann::json::array(), summary = nlohmann::json::object();
    std::map<std::string, std::vector<double>> values;
    for (size_t f = 0; f < per_fold.size(); ++f) {
      auto m = task_metrics(per_fold[f].labels[t], per_fold[f].probs[t], names, none);
      for (const auto& key : evaluation::bootstrap_metrics())
        if (m.contains(key) && m[key].is_number()) values[key].push_back(m[key].get<double>());
      folds.push_back({{"fold", f}, {"samples", m["samples"]}, {"accuracy", m["accuracy"]},
                       {"balanced_accuracy", m["balanced_accuracy"]}, {"macro_f1", m["macro_f1"]},
                       {"roc_auc_macro", m["roc_auc_macro"]}, {"ece", m["ece"]}});
    }
    for (const auto& [key, v] : values) {
      double mean = 0, var = 0;
      for (double x : v) mean += x / double(v.size());
      for (double x : v) var += (x - mean) * (x - mean);
      const double sd = v.size() > 1 ? std::sqrt(var / double(v.size() - 1)) : 0.0;  // sample standard deviation
      summary[key] = {{"mean", mean}, {"sd", sd}, {"folds", v.size()}};
    }
    evaluation::BootstrapOptions o = ci;
    o.seed = data::mix_seed(ci.seed, t);
    nlohmann::json jt = {{"folds", folds},
                         {"mean_sd", summary},
                         {"pooled", task_metrics(pooled.labels[t], pooled.probs[t], names, o, pooled.groups, first.cfg.aggregate)}};
    if (!holdout_probs.empty()) {
      nlohmann::json each = nlohmann::json::array();
      std::vector<torch::Tensor> p;
      for (const auto& hp : holdout_probs) {
        auto m = task_metrics(holdout_labels[t], hp[t], names, none);
        each.push_back({{"accuracy", m["accuracy"]}, {"balanced_accuracy", m["balanced_accuracy"]}, {"macro_f1", m["macro_f1"]}});
        p.push_back(hp[t]);
      }
      jt["holdout"] = {{"each_fold", each},
                       {"average", task_metrics(holdout_labels[t], torch::stack(p).mean(0), names, o, holdout_groups, first.cfg.aggregate)}};
    }
    tasks[mc.task_name(ti)] = jt;
  }
  const nlohmann::json out = {{"folds", runs.size()}, {"seed", first.cfg.seed}, {"holdout", !holdout_probs.empty()}, {"tasks", tasks}};
  io::atomic_write_text(runs::files::path(dir, runs::files::kCvMetrics), out.dump(2));
  return out;
}

}  // namespace drifa::training
