// drifa ensemble | drifa uq | drifa predict
#include <filesystem>
#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "drifa/error.h"
#include "drifa/io/atomic_file.h"
#include "drifa/io/model_file.h"
#include "drifa/runtime/threads.h"
#include "drifa/training/ensemble.h"
#include "drifa/training/run_files.h"
#include "drifa/uncertainty/predict.h"
#include "drifa/uncertainty/study.h"

namespace fs = std::filesystem;

namespace drifa::cli {

namespace {

std::string num(const nlohmann::json& v, int precision = 4) {
  if (v.is_null()) return "n/a";
  std::ostringstream o;
  o << std::fixed << std::setprecision(precision) << v.get<double>();
  return o.str();
}

void print_uq(const nlohmann::json& j) {
  std::cout << "\nuncertainty study: " << j["models"] << " model(s) x " << j["passes"] << " Monte Carlo passes\n";
  for (auto it = j["tasks"].begin(); it != j["tasks"].end(); ++it) {
    std::cout << "\ntask " << it.key() << "\n"
              << std::left << std::setw(24) << "method" << std::right << std::setw(9) << "accuracy" << std::setw(9) << "macro F1"
              << std::setw(8) << "NLL" << std::setw(8) << "Brier" << std::setw(8) << "ECE" << std::setw(8) << "AURC"
              << std::setw(14) << "errAUROC(H)" << std::setw(14) << "errAUROC(MI)" << "\n";
    for (const char* m : {"deterministic", "mc", "ensemble_deterministic", "ensemble"}) {
      if (!it.value().contains(m) || !it.value()[m].contains("metrics")) continue;
      const auto& s = it.value()[m];
      std::cout << std::left << std::setw(24) << m << std::right << std::setw(9) << num(s["metrics"]["accuracy"])
                << std::setw(9) << num(s["metrics"]["macro_f1"]) << std::setw(8) << num(s["nll"]) << std::setw(8)
                << num(s["brier"]) << std::setw(8) << num(s["ece"]) << std::setw(8) << num(s["aurc"]) << std::setw(14)
                << num(s["error_auroc"]["predictive_entropy"]) << std::setw(14) << num(s["error_auroc"]["mutual_information"])
                << "\n";
    }
  }
}

}  // namespace

void register_ensemble(CLI::App& app, GlobalFlags& g) {
  struct Opts {
    std::string config, out;
    int members = 5;
    std::optional<int> epochs;
    bool no_test = false;
    int nproc = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("ensemble", "train K models of one run config with different seeds (resumable model by model)");
  cmd->add_option("-c,--config", o->config, "run config (TOML)")->required();
  cmd->add_option("-o,--out", o->out, "ensemble folder (member-0 .. member-K-1)")->required();
  cmd->add_option("-k,--members", o->members, "number of models (the authors: 5)")->check(bounded(settings::limits::kEnsembleMembers));
  cmd->add_option("--epochs", o->epochs);
  cmd->add_flag("--no-test", o->no_test, "do not evaluate each member on the test part");
  cmd->add_option("--nproc", o->nproc, "spread the members over N local worker processes")->check(bounded(settings::limits::kNproc));
  cmd->callback([o, &g] {
    if (o->nproc > 0) return launch_local_workers(g, o->nproc, 60);
    apply_global_flags(g);
    auto cfg = training::RunConfig::from_toml(o->config);
    nlohmann::json train = nlohmann::json::object();
    if (o->epochs) train["epochs"] = *o->epochs;
    cfg.train = training::TrainConfig::from_json(train, "command line", cfg.train);
    training::TrainOptions to;
    to.quiet = g.quiet;
    to.device = pick_device(g.device);
    to.evaluate_test = !o->no_test;
    const auto ranks = DistributedEnv::from_environment();
    auto s = training::train_ensemble(cfg, o->out, o->members, to, ranks);
    if (!g.quiet)
      std::cout << (ranks.active() ? "rank " + std::to_string(ranks.rank) + ": " : std::string()) << s.size() << " of "
                << o->members << " models in " << o->out << "\n";
  });
}

void register_uq(CLI::App& app, GlobalFlags& g) {
  struct Opts {
    std::string dir, part = "test", out;
    int passes = 30, batch_size = 32;
    uint64_t seed = 0;
    bool naive = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("uq", "Monte Carlo dropout uncertainty of an ensemble (or one run) on its test split");
  cmd->add_option("dir", o->dir, "ensemble folder or training run folder")->required();
  cmd->add_option("-T,--passes", o->passes, "Monte Carlo passes per model")->check(bounded(settings::IntRange{1, settings::limits::kPasses.hi}));
  cmd->add_option("--seed", o->seed, "fixes the dropout masks");
  cmd->add_option("--part", o->part, "test | val");
  cmd->add_option("--batch-size", o->batch_size)->check(bounded(settings::limits::kBatchSize));
  cmd->add_option("--out", o->out, "output folder (default DIR/uq)");
  cmd->add_flag("--naive", o->naive, "one full forward pass per MC pass (for comparison; same numbers, slower)");
  cmd->callback([o, &g] {
    apply_global_flags(g);
    const auto device = pick_device(g.device);
    auto e = training::open_ensemble(o->dir, device);
    const auto examples = e.run.examples(o->part);
    data::ImageCache cache(e.run.cfg.data.image_options());
    uncertainty::StudyOptions so;
    so.mc.passes = o->passes;
    so.mc.seed = o->seed;
    so.mc.share_prefix = !o->naive;
    so.batch_size = o->batch_size;
    so.workers = e.run.cfg.data.workers;
    so.device = device;
    so.quiet = g.quiet;
    const auto s = uncertainty::sample_models(e.nets, examples, cache, so);
    auto j = uncertainty::summarise(s, e.nets[0]->config(), so.coverages);
    j["part"] = o->part;
    j["seed"] = o->seed;
    j["mc_seconds"] = s.mc_seconds;
    j["shared_prefix"] = !o->naive;
    namespace rf = training::run_files;
    const std::string out = o->out.empty() ? rf::path(o->dir, rf::kUqDir) : o->out;
    fs::create_directories(out);
    uncertainty::write_samples_csv(rf::path(out, rf::kUqSamples), s, examples, e.nets[0]->config());
    io::atomic_write_text(rf::path(out, rf::kUq), j.dump(2));
    if (!g.quiet) {
      print_uq(j);
      std::cout << "\nMC passes took " << std::fixed << std::setprecision(1) << s.mc_seconds << " s; wrote " << out
                << "/uq.json and samples.csv\n";
    }
  });
}

void register_predict(CLI::App& app, GlobalFlags& g) {
  struct Opts {
    std::string models, cases_csv, out, gradcam;
    std::vector<std::string> images;
    int passes = 30;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("predict", "classes, probabilities and uncertainty for new images (JSON)");
  cmd->add_option("model", o->models, "a model file (.safetensors), a training run folder or an ensemble folder")->required();
  cmd->add_option("-i,--images", o->images, "one image per modality, in the model's modality order");
  cmd->add_option("--cases", o->cases_csv, "CSV with one column per modality (named as the model's modalities)");
  cmd->add_option("-T,--passes", o->passes, "Monte Carlo passes per model (0 = deterministic)")->check(bounded(settings::limits::kPasses));
  cmd->add_option("--seed", o->seed);
  cmd->add_option("--gradcam", o->gradcam, "also write Grad-CAM overlays into this folder");
  cmd->add_option("-o,--out", o->out, "write the JSON here instead of printing it");
  cmd->callback([o, &g] {
    apply_global_flags(g);
    const auto device = pick_device(g.device);
    std::vector<DRIFANet> nets;
    if (fs::is_directory(o->models)) {
      nets = training::open_ensemble(o->models, device).nets;
    } else {
      auto net = io::load_model(o->models).net;
      net->to(device);
      nets.push_back(net);
    }
    const auto& cfg = nets[0]->config();
    std::vector<std::vector<std::string>> cases;
    if (!o->cases_csv.empty()) cases = uncertainty::read_cases_csv(o->cases_csv, cfg);
    if (!o->images.empty()) cases.push_back(o->images);
    if (cases.empty()) throw Error("give --images (one per modality) or --cases CSV");
    uncertainty::PredictOptions po;
    po.mc.passes = o->passes;
    po.mc.seed = o->seed;
    po.device = device;
    po.gradcam_dir = o->gradcam;
    const auto j = uncertainty::predict(nets, cases, po);
    if (o->out.empty()) std::cout << j.dump(2) << "\n";
    else io::atomic_write_text(o->out, j.dump(2));
  });
}

}  // namespace drifa::cli
