// drifa synth | drifa train | drifa evaluate
#include <iomanip>
#include <sstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "drifa/data/check.h"
#include "drifa/data/synth.h"
#include "drifa/error.h"
#include "drifa/model/mfa.h"
#include "drifa/runtime/distributed.h"
#include "drifa/runtime/threads.h"
#include "drifa/training/trainer.h"

namespace drifa::cli {

namespace {

// "0.8500 [0.8000, 0.9000]": a metric with its bootstrap interval when metrics.json has one.
std::string with_interval(const nlohmann::json& t, const char* key) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(4);
  if (t[key].is_null()) return "n/a";
  o << t[key].get<double>();
  if (t.contains("intervals") && t["intervals"].contains(key)) {
    const auto& iv = t["intervals"][key];
    o << " [" << iv[0].get<double>() << ", " << iv[1].get<double>() << "]";
  }
  return o.str();
}

// A metric to 3 decimals, "-" where it is missing or null (a task not scored).
std::string fixed3(const nlohmann::json& t, const char* key) {
  if (!t.contains(key) || !t[key].is_number()) return "-";
  std::ostringstream o;
  o << std::fixed << std::setprecision(3) << t[key].get<double>();
  return o.str();
}

void print_metrics(const nlohmann::json& m) {
  std::cout << "\n" << m.value("part", "test") << " metrics (" << m.value("model", "") << ")"
            << (m.value("calibrated", false) ? ", calibrated" : "") << "\n";
  for (auto it = m["tasks"].begin(); it != m["tasks"].end(); ++it) {
    const auto& t = it.value();
    std::cout << "task " << it.key() << ": " << t["samples"].get<int64_t>() << " samples, chance " << std::fixed
              << std::setprecision(3) << 1.0 / double(t["classes"].size()) << "\n";
    const std::pair<const char*, const char*> rows[] = {{"accuracy", "accuracy"},          {"balanced_accuracy", "balanced accuracy"},
                                                        {"macro_precision", "macro precision"}, {"macro_recall", "macro recall"},
                                                        {"macro_f1", "macro F1"},           {"roc_auc_macro", "ROC-AUC"},
                                                        {"ece", "ECE"}};
    for (const auto& [key, label] : rows)
      if (t.contains(key)) std::cout << "  " << std::left << std::setw(18) << label << std::right << with_interval(t, key) << "\n";
    if (t.contains("group_level")) {
      const auto& gl = t["group_level"];
      std::cout << "  per group (" << gl["groups"].get<int64_t>() << " groups, " << gl["aggregate"].get<std::string>()
                << " of their images' probabilities)\n";
      for (const auto& [key, label] : rows)
        if (gl.contains(key)) std::cout << "    " << std::left << std::setw(16) << label << std::right << with_interval(gl, key) << "\n";
    }
  }
  if (!m["tasks"].empty() && m["tasks"].begin().value().contains("intervals")) {
    const auto& iv = m["tasks"].begin().value()["intervals"];
    std::cout << "[..]: 95% intervals, " << (iv.contains("groups") ? "cluster bootstrap over groups" : "stratified bootstrap") << " ("
              << iv["resamples"] << " resamples)\n";
  }
  if (m.contains("partners")) {
    std::cout << "\nwith partners from the bank (" << m["partners"]["bank_size"] << " per modality) in place of each task's other modalities\n"
              << std::left << std::setw(16) << "task" << std::right << std::setw(10) << "partners" << std::setw(10) << "accuracy"
              << std::setw(10) << "bal.acc" << std::setw(10) << "ROC-AUC" << std::setw(14) << "partner info" << std::setw(12) << "partner sd" << "\n";
    for (const auto& run : m["partners"]["runs"])
      for (auto it = run["tasks"].begin(); it != run["tasks"].end(); ++it)
        std::cout << std::left << std::setw(16) << it.key() << std::right << std::setw(10) << run["partners"].get<int64_t>()
                  << std::setw(10) << fixed3(it.value(), "accuracy") << std::setw(10) << fixed3(it.value(), "balanced_accuracy")
                  << std::setw(10) << fixed3(it.value(), "roc_auc_macro") << std::setw(14) << fixed3(it.value(), "partner_information")
                  << std::setw(12) << fixed3(it.value(), "partner_sd") << "\n";
  }
  if (m.contains("missing")) {
    std::cout << "\nwith modalities absent (missing.json)\n" << std::left << std::setw(20) << "absent" << std::setw(16) << "task"
              << std::right << std::setw(10) << "accuracy" << std::setw(10) << "bal.acc" << std::setw(10) << "ROC-AUC" << "\n";
    for (const auto& row : m["missing"]["patterns"])
      for (auto it = row["tasks"].begin(); it != row["tasks"].end(); ++it)
        std::cout << std::left << std::setw(20) << row["pattern"].get<std::string>() << std::setw(16) << it.key() << std::right
                  << std::setw(10) << fixed3(it.value(), "accuracy") << std::setw(10) << fixed3(it.value(), "balanced_accuracy")
                  << std::setw(10) << fixed3(it.value(), "roc_auc_macro") << "\n";
  }
}

}  // namespace

void register_synth(CLI::App& app, GlobalFlags& g) {
  auto o = std::make_shared<data::SynthOptions>();
  auto* cmd = app.add_subcommand("synth", "write the synthetic two-modality demo data set (with lesion masks and demo.toml)");
  cmd->add_option("-o,--out", o->out, "output folder")->required();
  namespace L = settings::limits;
  cmd->add_option("--train-per-class", o->train_per_class, "training images per class")->check(bounded(L::kSynthPerClass));
  cmd->add_option("--test-per-class", o->test_per_class, "test images per class")->check(bounded(L::kSynthPerClass));
  cmd->add_option("--size", o->size, "image size in pixels")->check(bounded(L::kSynthSize));
  cmd->add_option("--seed", o->seed, "random seed");
  cmd->callback([o, &g] {
    data::write_synthetic(*o);
    if (!g.quiet) std::cout << "wrote synthetic data to " << o->out << " (config: " << o->out << "/demo.toml)\n";
  });
}

void register_check(CLI::App& app, GlobalFlags& g) {
  struct Opts {
    std::string config;
    std::optional<int64_t> seed;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("check", "the data checks alone: counts per class, part and group, duplicates across parts, "
                                          "groups in two parts, unreadable files (exit 1 on a leak or an unreadable file)");
  cmd->add_option("-c,--config", o->config, "run config (TOML)")->required();
  cmd->add_option("--seed", o->seed, "the split's seed (default: the config's)");
  cmd->callback([o, &g] {
    apply_global_flags(g);
    auto cfg = runs::RunConfig::from_toml(o->config);
    if (o->seed) cfg.seed = static_cast<uint64_t>(settings::check_integer("command line", "--seed", *o->seed, settings::limits::kSeed));
    const auto c = data::check_data(cfg.data, cfg.seed);
    std::cout << c.table();
    if (!c.ok())
      throw Error(o->config + ": the data check found " + c.problems() + " (listed above)");
    std::cout << "ok: no leak between parts, every image readable\n";
  });
}

void register_train(CLI::App& app, GlobalFlags& g) {
  struct Opts {
    std::string config, out;
    bool resume = false, bf16 = false, skip_bad = false, allow_duplicates = false, no_test = false;
    std::optional<int64_t> epochs, batch_size, workers, seed, steps_per_epoch, micro_batches;
    std::optional<double> lr;
    std::optional<std::string> precision;
    std::string tuning_cache;
    bool recompute_attention = false;
    int nproc = 0, dist_timeout = 60;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("train", "train DRIFA-Net on the data of a TOML run config; evaluates the best model on the test part");
  cmd->add_option("-c,--config", o->config, "run config (TOML): [model], [data], [train], [augment]")->required();
  cmd->add_option("-o,--out", o->out, "run folder (checkpoints, logs, metrics)")->required();
  cmd->add_flag("--resume", o->resume, "continue the run in --out from its last checkpoint (or start it, if it stopped before its first)");
  cmd->add_option("--epochs", o->epochs);
  cmd->add_option("--batch-size", o->batch_size);
  cmd->add_option("--lr", o->lr);
  cmd->add_option("--seed", o->seed, "fixes splits, pairing, augmentation, initialisation and dropout");
  cmd->add_option("--workers", o->workers, "image decoding threads");
  cmd->add_option("--steps-per-epoch", o->steps_per_epoch, "cap steps per epoch (0 = full pass)");
  cmd->add_option("--precision", o->precision,
                  "auto | fp32 | bf16 (bfloat16 autocast on CPU, float16 on CUDA); auto: the fastest of fp32, bf16 "
                  "(where the CPU computes it natively), channels-last, the fused attention kernels and threaded BLAS, "
                  "then MFA's chain and recomputed maps (memory knobs: kept unless 10% slower), "
                  "timed on the first batch and cached per machine and configuration; fp32 for models under 0.5 GMAC "
                  "per step (default: the config's [train] precision, auto)");
  cmd->add_option("--tuning-cache", o->tuning_cache,
                  "with precision auto: the file the timed choice is kept in, or 'none' to time every run (default: "
                  "$DRIFA_CACHE_DIR/tuning.json, else $XDG_CACHE_HOME/drifa or ~/.cache/drifa)");
  cmd->add_flag("--bf16", o->bf16, "the same as --precision bf16");
  cmd->add_flag("--recompute-attention", o->recompute_attention,
                "keep none of the attention's full-resolution maps (MFA's, MIFA's local branch) for the backward pass and "
                "recompute them: about 40% less peak memory at the paper's widths, same gradients; precision auto "
                "turns it on itself where it costs no measurable time");
  cmd->add_flag("--skip-bad", o->skip_bad, "skip unreadable images with a warning instead of stopping");
  cmd->add_flag("--allow-duplicates", o->allow_duplicates,
                "go on, with a warning per pair, when the same image is in two parts (default: an error)");
  cmd->add_flag("--no-test", o->no_test, "do not evaluate on the test part at the end");
  cmd->add_option("--micro-batches", o->micro_batches, "gradient accumulation: micro-batches per optimizer step");
  cmd->add_option("--nproc", o->nproc, "data-parallel: run N local worker processes (Gloo on loopback)")
      ->check(bounded(settings::limits::kNproc));
  cmd->add_option("--dist-timeout", o->dist_timeout, "seconds a rank waits for the others before giving up")
      ->check(bounded(settings::limits::kTimeoutSeconds));
  cmd->callback([o, &g] {
    if (o->nproc > 0) return launch_local_workers(g, o->nproc, o->dist_timeout);
    apply_global_flags(g);
    if (o->recompute_attention) set_attention_recompute(true);
    const auto env = DistributedEnv::from_environment();
    std::unique_ptr<ProcessGroup> group;
    if (env.active()) group = std::make_unique<ProcessGroup>(env, std::chrono::seconds(o->dist_timeout));
    auto cfg = runs::RunConfig::from_toml(o->config);
    // The flags go through the settings validator, as the config file's own values did.
    nlohmann::json train = nlohmann::json::object();
    if (o->epochs) train["epochs"] = *o->epochs;
    if (o->batch_size) train["batch_size"] = *o->batch_size;
    if (o->lr) train["lr"] = *o->lr;
    if (o->steps_per_epoch) train["steps_per_epoch"] = *o->steps_per_epoch;
    if (o->micro_batches) train["micro_batches"] = *o->micro_batches;
    if (o->bf16) train["bf16"] = true;
    if (o->precision) train["precision"] = *o->precision;
    cfg.train = runs::TrainConfig::from_json(train, "command line", cfg.train);
    if (o->seed) cfg.seed = static_cast<uint64_t>(settings::check_integer("command line", "--seed", *o->seed, settings::limits::kSeed));
    if (o->workers) cfg.data.workers = static_cast<int>(settings::check_integer("command line", "--workers", *o->workers, settings::limits::kWorkers));
    if (o->skip_bad) cfg.data.skip_bad = true;
    if (o->allow_duplicates) cfg.data.allow_duplicates = true;
    training::TrainOptions to;
    to.resume = o->resume;
    to.quiet = g.quiet;
    to.device = pick_device(g.device);
    to.evaluate_test = !o->no_test;
    to.group = group.get();
    to.tuning_cache = o->tuning_cache;
    auto s = training::train(cfg, o->out, to);
    if (env.rank != 0) return;
    if (!g.quiet)
      std::cout << "trained " << s.epochs_run << " epochs; best validation loss " << s.best_val_loss << " at epoch "
                << s.best_epoch << (s.early_stopped ? " (early stopping)" : "") << "\nbest model: " << s.best_model << "\n";
    if (!s.test_metrics.is_null()) print_metrics(s.test_metrics);
  });
}

void register_evaluate(CLI::App& app, GlobalFlags& g) {
  struct Opts {
    std::string run, model, part = "test", out;
    bool bf16 = false, no_calibration = false;
    int resamples = 2000;
    uint64_t seed = 0;
    int64_t partners = 0;
    std::vector<std::string> missing;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("evaluate", "per-task metrics of a model on a run's saved test (or validation) split");
  cmd->add_option("run_dir", o->run, "training run folder")->required();
  cmd->add_option("--model", o->model, "model file (default: RUN_DIR/best.safetensors)");
  cmd->add_option("--part", o->part, "test | val");
  cmd->add_option("--out", o->out, "where metrics.json and predictions.csv go (default: RUN_DIR)");
  cmd->add_flag("--bf16", o->bf16, "bfloat16 autocast");
  cmd->add_flag("--no-calibration", o->no_calibration, "the raw probabilities, even when the model file is calibrated");
  cmd->add_option("--resamples", o->resamples, "bootstrap resamples of the 95% intervals (0: none)")
      ->check(bounded(settings::limits::kResamples));
  cmd->add_option("--seed", o->seed, "fixes the bootstrap resamples");
  cmd->add_option("--partners", o->partners,
                  "unpaired runs: also score each task with its other modalities averaged over 1 and this many bank partners")
      ->check(bounded(settings::limits::kPartners));
  cmd->add_option("--missing", o->missing,
                  "also score with these modalities absent (by name), or 'all' for every pattern; writes missing.json");
  cmd->callback([o, &g] {
    apply_global_flags(g);
    const std::string model = o->model.empty() ? o->run + "/best.safetensors" : o->model;
    training::EvaluateOptions eo;
    eo.device = pick_device(g.device);
    eo.bf16 = o->bf16;
    eo.calibrated = !o->no_calibration;
    eo.ci.resamples = o->resamples;
    eo.ci.seed = o->seed;
    eo.partners = o->partners;
    eo.missing = o->missing;
    auto m = training::evaluate_run(o->run, model, o->part, o->out.empty() ? o->run : o->out, eo);
    print_metrics(m);
  });
}

}  // namespace drifa::cli
