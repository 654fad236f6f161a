// drifa cv: stratified k-fold cross-validation of a run config.
#include <iomanip>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "drifa/runtime/distributed.h"
#include "drifa/runtime/threads.h"
#include "drifa/training/cross_validation.h"

namespace drifa::cli {

namespace {

std::string cell(const nlohmann::json& v) {
  if (v.is_null()) return "n/a";
  std::ostringstream o;
  o << std::fixed << std::setprecision(4) << v.get<double>();
  return o.str();
}

void print_cv(const nlohmann::json& j) {
  std::cout << "\n" << j["folds"] << "-fold cross-validation\n";
  for (auto it = j["tasks"].begin(); it != j["tasks"].end(); ++it) {
    const auto& t = it.value();
    std::cout << "\ntask " << it.key() << "\n" << std::left << std::setw(14) << "" << std::right;
    for (const char* k : {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc_macro", "ece"}) std::cout << std::setw(19) << k;
    std::cout << "\n";
    for (const auto& f : t["folds"]) {
      std::cout << std::left << std::setw(14) << ("fold " + std::to_string(f["fold"].get<int>())) << std::right;
      for (const char* k : {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc_macro", "ece"}) std::cout << std::setw(19) << cell(f[k]);
      std::cout << "\n";
    }
    std::cout << std::left << std::setw(14) << "mean +- sd" << std::right;
    for (const char* k : {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc_macro", "ece"})
      std::cout << std::setw(19) << (t["mean_sd"].contains(k) ? cell(t["mean_sd"][k]["mean"]) + " +- " + cell(t["mean_sd"][k]["sd"]) : "n/a");
    std::cout << "\n" << std::left << std::setw(14) << "pooled" << std::right;
    for (const char* k : {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc_macro", "ece"}) std::cout << std::setw(19) << cell(t["pooled"][k]);
    std::cout << "\n" << std::left << std::setw(14) << "  95% CI" << std::right;
    for (const char* k : {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc_macro", "ece"}) {
      const auto& iv = t["pooled"].value("intervals", nlohmann::json::object());
      std::cout << std::setw(19) << (iv.contains(k) ? "[" + cell(iv[k][0]) + ", " + cell(iv[k][1]) + "]" : "");
    }
    std::cout << "\n";
    if (t.contains("holdout")) {
      std::cout << std::left << std::setw(14) << "test, avg" << std::right;
      for (const char* k : {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc_macro", "ece"})
        std::cout << std::setw(19) << cell(t["holdout"]["average"][k]);
      std::cout << "\n";
    }
  }
}

}  // namespace

void register_cv(CLI::App& app, GlobalFlags& g) {
  struct Opts {
    std::string config, out;
    int folds = 5, nproc = 0, resamples = 2000;
    std::optional<int> epochs;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("cv", "stratified k-fold cross-validation (one resumable run per fold, pooled out-of-fold metrics)");
  cmd->add_option("-c,--config", o->config, "run config (TOML)")->required();
  cmd->add_option("-o,--out", o->out, "cross-validation folder (fold-0 .. fold-K-1)")->required();
  cmd->add_option("-k,--folds", o->folds, "number of folds")->check(bounded(settings::limits::kFolds));
  cmd->add_option("--epochs", o->epochs);
  cmd->add_option("--nproc", o->nproc, "spread the folds over N local worker processes")->check(bounded(settings::limits::kNproc));
  cmd->add_option("--resamples", o->resamples, "bootstrap resamples of the pooled intervals (0: none)")
      ->check(bounded(settings::limits::kResamples));
  cmd->callback([o, &g] {
    const auto ranks = DistributedEnv::from_environment();
    if (o->nproc > 0) {
      launch_local_workers(g, o->nproc, 60);
    } else {
      apply_global_flags(g);
      const auto cfg = run_config_from(o->config, o->epochs);
      training::TrainOptions to;
      to.quiet = g.quiet;
      to.device = pick_device(g.device);
      training::train_folds(cfg, o->out, o->folds, to, ranks);
      if (ranks.active()) return;  // the launching process pools once every rank has finished
    }
    apply_global_flags(g);
    evaluation::BootstrapOptions ci;
    ci.resamples = o->resamples;
    const auto j = training::summarise_folds(o->out, pick_device(g.device), ci);
    if (!g.quiet) {
      print_cv(j);
      std::cout << "\nwrote " << o->out << "/cv_metrics.json and predictions.csv\n";
    }
  });
}

}  // namespace drifa::cli
