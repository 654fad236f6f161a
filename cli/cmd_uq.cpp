// drifa ensemble | drifa calibrate | drifa uq | drifa predict
#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "drifa/error.h"
#include "drifa/inference/method.h"
#include "drifa/inputs/partners.h"
#include "drifa/io/atomic_file.h"
#include "drifa/runs/model_file.h"
#include "drifa/runtime/threads.h"
#include "drifa/training/ensemble.h"
#include "drifa/runs/files.h"
#include "drifa/uncertainty/run_calibration.h"
#include "drifa/uncertainty/predict.h"
#include "drifa/uncertainty/run_uq.h"

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
  std::cout << "\nuncertainty study: " << j["models"] << " model(s) x " << j["passes"] << " Monte Carlo passes"
            << (j["calibration"].is_null() ? ", not calibrated (`drifa calibrate DIR` fits temperatures and conformal sets)"
                                           : ", calibrated on the " + j["calibration"]["part"].get<std::string>() + " part")
            << "\n";
  for (const auto& w : j["warnings"]) std::cout << "warning: " << w.get<std::string>() << "\n";
  for (auto it = j["tasks"].begin(); it != j["tasks"].end(); ++it) {
    std::cout << "\ntask " << it.key() << "\n"
              << std::left << std::setw(24) << "method" << std::right << std::setw(26) << "accuracy [95% CI]" << std::setw(9)
              << "bal.acc" << std::setw(9) << "macro F1" << std::setw(7) << "T" << std::setw(16) << "NLL raw>cal" << std::setw(16)
              << "ECE raw>cal" << std::setw(8) << "Brier" << std::setw(8) << "AURC" << std::setw(13) << "errAUROC(H)" << "\n";
    for (const auto* method : inference::methods()) {
      const auto m = method->name();
      if (!it.value().contains(m) || !it.value()[m].contains("metrics")) continue;
      const auto& s = it.value()[m];
      std::string acc = num(s["metrics"]["accuracy"]);
      if (s.contains("intervals") && s["intervals"].contains("accuracy"))
        acc += " [" + num(s["intervals"]["accuracy"][0]) + ", " + num(s["intervals"]["accuracy"][1]) + "]";
      const bool cal = s.contains("before_calibration");
      std::cout << std::left << std::setw(24) << m << std::right << std::setw(26) << acc << std::setw(9)
                << num(s["metrics"]["balanced_accuracy"]) << std::setw(9) << num(s["metrics"]["macro_f1"]) << std::setw(7)
                << num(s["temperature"], 2) << std::setw(16)
                << (cal ? num(s["before_calibration"]["nll"]) + ">" + num(s["nll"]) : num(s["nll"])) << std::setw(16)
                << (cal ? num(s["before_calibration"]["ece"]) + ">" + num(s["ece"]) : num(s["ece"])) << std::setw(8)
                << num(s["brier"]) << std::setw(8) << num(s["aurc"]) << std::setw(13) << num(s["error_auroc"]["predictive_entropy"])
                << "\n";
      if (s.contains("group_level")) {  // one prediction per patient, lesion or volume
        const auto& gl = s["group_level"];
        std::string gacc = num(gl["accuracy"]);
        if (gl.contains("intervals") && gl["intervals"].contains("accuracy"))
          gacc += " [" + num(gl["intervals"]["accuracy"][0]) + ", " + num(gl["intervals"]["accuracy"][1]) + "]";
        std::cout << std::left << std::setw(24) << ("  per group (" + std::to_string(gl["groups"].get<int64_t>()) + ")") << std::right
                  << std::setw(26) << gacc << std::setw(9) << num(gl["balanced_accuracy"]) << std::setw(9) << num(gl["macro_f1"])
                  << std::setw(7) << "" << std::setw(16) << num(gl["nll"]) << std::setw(16) << num(gl["ece"]) << "\n";
      }
    }
    bool header = false;
    for (const auto* method : inference::methods()) {
      const auto m = method->name();
      if (!it.value().contains(m) || !it.value()[m].contains("conformal")) continue;
      for (auto a = it.value()[m]["conformal"].begin(); a != it.value()[m]["conformal"].end(); ++a)
        for (auto sc = a.value().begin(); sc != a.value().end(); ++sc) {
          if (!header) {
            std::cout << "  conformal sets: " << std::left << std::setw(24) << "method" << std::setw(7) << "alpha" << std::setw(16)
                      << "score" << std::right << std::setw(10) << "coverage" << std::setw(10) << "mean size"
                      << "   worst class coverage\n";
            header = true;
          }
          double worst = 1;
          for (const auto& c : sc.value()["per_class"])
            if (!c["coverage"].is_null()) worst = std::min(worst, c["coverage"].get<double>());
          std::cout << "                  " << std::left << std::setw(24) << m << std::setw(7) << a.key() << std::setw(16) << sc.key()
                    << std::right << std::setw(10) << num(sc.value()["coverage"]) << std::setw(10)
                    << num(sc.value()["mean_size"], 2) << "   " << num(nlohmann::json(worst)) << "\n";
        }
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
    const auto cfg = run_config_from(o->config, o->epochs);
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

// The Monte Carlo sampling flags shared by calibrate and uq.
struct StudyFlags {
  int passes = 30, batch_size = 32, views = 0;
  bool views_mc = false;
  uint64_t seed = 0;
};
void add_study_flags(CLI::App* cmd, StudyFlags& f) {
  cmd->add_option("-T,--passes", f.passes, "Monte Carlo passes per model")->check(bounded(settings::IntRange{1, settings::limits::kPasses.hi}));
  cmd->add_option("--seed", f.seed, "fixes the dropout masks (and the randomised APS draws)");
  cmd->add_option("--batch-size", f.batch_size)->check(bounded(settings::limits::kBatchSize));
  cmd->add_option("--tta", f.views, "also test-time augmentation: this many views per case (flips and 90-degree turns as the run "
                  "config's [tta] allows each modality; default hflip)")->check(bounded(settings::limits::kViews));
  cmd->add_flag("--tta-mc", f.views_mc, "with --tta: also every view x the Monte Carlo passes (method tta_mc)");
}
uncertainty::StudyOptions study_options(const StudyFlags& f, const GlobalFlags& g, torch::Device device) {
  uncertainty::StudyOptions so;
  so.mc.passes = f.passes;
  so.mc.seed = f.seed;
  so.draw.tta.views = f.views;
  so.draw.tta.mc = f.views_mc;
  if (f.views_mc && f.views == 0) throw Error("--tta-mc needs --tta VIEWS");
  so.batch_size = f.batch_size;
  so.device = device;
  so.quiet = g.quiet;
  return so;
}

void register_calibrate(CLI::App& app, GlobalFlags& g) {
  struct Opts {
    std::string dir, score = "lac";
    StudyFlags study;
    double alpha = 0.1;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("calibrate", "fit temperatures and conformal scores of every predictive method on the validation split");
  cmd->add_option("dir", o->dir, "ensemble folder or training run folder")->required();
  add_study_flags(cmd, o->study);
  cmd->add_option("--alpha", o->alpha, "default miscoverage of prediction sets (predict)")->check(bounded(settings::limits::kAlpha));
  cmd->add_option("--score", o->score, "default conformal score: lac | aps | aps_randomized");
  cmd->callback([o, &g] {
    apply_global_flags(g);
    uncertainty::CalibrateOptions co;
    co.study = study_options(o->study, g, pick_device(g.device));
    co.alpha = o->alpha;
    co.score = calibration::parse_score(o->score, "command line: --score");
    const auto c = uncertainty::calibrate_run(o->dir, co);
    if (g.quiet) return;
    std::cout << "\ncalibration on the " << c.part << " part (" << c.models << " model(s), " << c.passes << " passes)\n"
              << std::left << std::setw(16) << "task" << std::setw(24) << "method" << std::right << std::setw(9) << "samples"
              << std::setw(8) << "T" << std::setw(18) << "NLL before>after" << std::setw(18) << "ECE before>after" << "\n";
    for (const auto& [task, by_method] : c.tasks)
      for (const auto* method : inference::methods()) {
      const auto m = method->name();
        auto it = by_method.find(m);
        if (it == by_method.end()) continue;
        const auto& f = it->second;
        std::cout << std::left << std::setw(16) << task << std::setw(24) << m << std::right << std::setw(9) << f.samples
                  << std::setw(8) << num(f.temperature, 3) << std::setw(18) << num(f.nll_before) + ">" + num(f.nll_after)
                  << std::setw(18) << num(f.ece_before) + ">" + num(f.ece_after) << "\n";
      }
    std::cout << "wrote " << runs::files::path(o->dir, runs::files::kCalibration) << "\n";
  });
}

void register_uq(CLI::App& app, GlobalFlags& g) {
  struct Opts {
    std::string dir, part = "test", out, alphas = "0.1,0.05";
    StudyFlags study;
    bool naive = false, no_calibration = false;
    int resamples = 2000;
    int64_t partners = 0;
    std::vector<std::string> missing;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("uq", "Monte Carlo dropout uncertainty of an ensemble (or one run) on its test split");
  cmd->add_option("dir", o->dir, "ensemble folder or training run folder")->required();
  add_study_flags(cmd, o->study);
  cmd->add_option("--part", o->part, "test | val");
  cmd->add_option("--out", o->out, "output folder (default DIR/uq)");
  cmd->add_flag("--naive", o->naive, "one full forward pass per MC pass (for comparison; same numbers, slower)");
  cmd->add_flag("--no-calibration", o->no_calibration, "the raw probabilities, even when the folder is calibrated");
  cmd->add_option("--alpha", o->alphas, "miscoverage levels of the conformal sets, comma-separated");
  cmd->add_option("--resamples", o->resamples, "bootstrap resamples of the 95% intervals (0: none)")
      ->check(bounded(settings::limits::kResamples));
  cmd->add_option("--partners", o->partners, "unpaired runs: each task's other modalities averaged over this many bank partners")
      ->check(bounded(settings::limits::kPartners));
  cmd->add_option("--missing", o->missing, "modalities left out (absent for every case), by name");
  cmd->callback([o, &g] {
    apply_global_flags(g);
    uncertainty::UqOptions uo;
    uo.partners = o->partners;
    uo.missing = o->missing;
    uo.study = study_options(o->study, g, pick_device(g.device));
    uo.study.mc.share_prefix = !o->naive;
    uo.part = o->part;
    uo.out = o->out;
    uo.calibrated = !o->no_calibration;
    uo.alphas = parse_real_list(o->alphas, "--alpha", settings::limits::kAlpha);
    uo.ci.resamples = o->resamples;
    uo.ci.seed = o->study.seed;
    const auto j = uncertainty::run_uq(o->dir, uo);
    if (!g.quiet) {
      print_uq(j);
      const std::string out = o->out.empty() ? runs::files::path(o->dir, runs::files::kUqDir) : o->out;
      std::cout << "\nMC passes took " << std::fixed << std::setprecision(1) << j["mc_seconds"].get<double>() << " s; wrote " << out
                << "/uq.json and samples.csv\n";
    }
  });
}

// -i values: every image in the model's modality order, or NAME=PATH for the modalities a case has.
std::vector<std::string> case_from_images(const std::vector<std::string>& images, const ModelConfig& cfg) {
  auto named = [&](const std::string& v) -> int64_t {
    const auto eq = v.find('=');
    if (eq == std::string::npos) return -1;
    for (int64_t m = 0; m < cfg.modalities; ++m)
      if (v.compare(0, eq, cfg.modality_name(m)) == 0 && eq == cfg.modality_name(m).size()) return m;
    return -1;
  };
  const bool by_name = std::any_of(images.begin(), images.end(), [&](const std::string& v) { return named(v) >= 0; });
  if (!by_name) return images;
  std::vector<std::string> c(static_cast<size_t>(cfg.modalities));
  for (const auto& v : images) {
    const auto m = named(v);
    if (m < 0) throw Error("--images: '" + v + "': give every image as NAME=PATH (NAME a modality of the model) or none");
    if (!c[static_cast<size_t>(m)].empty()) throw Error("--images: two images for " + cfg.modality_name(m));
    c[static_cast<size_t>(m)] = v.substr(v.find('=') + 1);
    if (c[static_cast<size_t>(m)].empty()) throw Error("--images: '" + v + "': an empty path");
  }
  return c;
}

void register_predict(CLI::App& app, GlobalFlags& g) {
  struct Opts {
    std::string models, cases_csv, out, gradcam, partners_from, group_column, aggregate = "mean";
    std::vector<std::string> images;
    int passes = 30, views = 0;
    int64_t partners = inputs::kDefaultPartners;
    uint64_t seed = 0;
    bool no_calibration = false;
    std::optional<double> alpha;
    std::string score;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("predict", "classes, probabilities and uncertainty for new images (JSON)");
  cmd->add_option("model", o->models, "a model file (.safetensors), a training run folder or an ensemble folder")->required();
  cmd->add_option("-i,--images", o->images,
                  "one image per modality in the model's order, or NAME=PATH for each modality the case has; a volume modality takes a .nii, .nii.gz or DICOM series folder");
  cmd->add_option("--cases", o->cases_csv, "CSV with one column per modality (named as the model's modalities; empty: not given)");
  cmd->add_option("--group-column", o->group_column,
                  "with --cases: the CSV column naming each case's patient, lesion or volume; adds one answer per group (\"groups\")");
  cmd->add_option("--aggregate", o->aggregate, "how a group's cases (and a volume's slices) combine: mean | max (default mean)");
  cmd->add_option("-T,--passes", o->passes, "Monte Carlo passes per model (0 = deterministic)")->check(bounded(settings::limits::kPasses));
  cmd->add_option("--tta", o->views, "test-time augmentation: this many views per case (x the passes, if any; the run config's "
                  "[tta] says which flips and turns each modality allows, default hflip)")->check(bounded(settings::limits::kViews));
  cmd->add_option("--partners", o->partners, "unpaired models: partners averaged over for each modality not given")
      ->check(bounded(settings::limits::kPartners));
  cmd->add_option("--partners-from", o->partners_from, "the run folder whose partner bank a bare unpaired model file uses");
  cmd->add_option("--seed", o->seed);
  cmd->add_option("--gradcam", o->gradcam, "also write Grad-CAM overlays into this folder");
  cmd->add_option("-o,--out", o->out, "write the JSON here instead of printing it");
  cmd->add_flag("--no-calibration", o->no_calibration, "the raw probabilities and no prediction sets");
  cmd->add_option("--alpha", o->alpha, "miscoverage of the prediction sets (default: the calibration's)")
      ->check(bounded(settings::limits::kAlpha));
  cmd->add_option("--score", o->score, "conformal score: lac | aps | aps_randomized (default: the calibration's)");
  cmd->callback([o, &g] {
    apply_global_flags(g);
    auto p = uncertainty::open_predictor(o->models, pick_device(g.device), o->partners_from);
    if (o->no_calibration) p.calibration.reset();
    const auto& cfg = p.nets[0]->config();
    std::vector<std::vector<std::string>> cases;
    if (!o->cases_csv.empty()) cases = uncertainty::read_cases_csv(o->cases_csv, cfg);
    if (!o->images.empty()) cases.push_back(case_from_images(o->images, cfg));
    if (cases.empty()) throw Error("give --images (one per modality, or NAME=PATH) or --cases CSV");
    uncertainty::PredictOptions po;
    po.mc.passes = o->passes;
    po.mc.seed = o->seed;
    po.tta.views = o->views;
    po.tta.transforms = p.tta_transforms;
    po.device = pick_device(g.device);
    po.gradcam_dir = o->gradcam;
    po.bank = p.bank ? &*p.bank : nullptr;
    po.partners = o->partners;
    po.unpaired_without_bank = p.pairing == "unpaired" && !p.bank;
    po.volumes = p.volumes;
    po.volume_aggregate = o->aggregate;
    if (p.calibration) {
      po.calibration = &*p.calibration;
      po.alpha = o->alpha.value_or(p.calibration->alpha);
      po.score = o->score.empty() ? p.calibration->score : calibration::parse_score(o->score, "command line: --score");
    }
    if (!o->group_column.empty() && o->cases_csv.empty()) throw Error("command line: --group-column: needs --cases");
    if (o->aggregate != "mean" && o->aggregate != "max")
      throw Error("command line: --aggregate: found '" + o->aggregate + "', allowed mean or max");
    auto j = uncertainty::predict(p.nets, cases, po);
    j["pairing"] = p.pairing;
    if (!o->group_column.empty()) {
      auto groups = uncertainty::read_case_groups(o->cases_csv, o->group_column);
      if (!o->images.empty()) groups.push_back("case " + std::to_string(cases.size()) + " (--images)");
      j["groups"] = uncertainty::aggregate_cases(j["cases"], groups, o->aggregate, cfg);
    }
    if (o->out.empty()) std::cout << j.dump(2) << "\n";
    else io::atomic_write_text(o->out, j.dump(2));
  });
}

}  // namespace drifa::cli
