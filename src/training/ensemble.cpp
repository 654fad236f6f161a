#include "drifa/training/ensemble.h"

#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "drifa/error.h"
#include "drifa/io/atomic_file.h"
#include "drifa/io/config_file.h"
#include "drifa/io/folder_lock.h"
#include "drifa/io/model_file.h"
#include "drifa/io/settings.h"
#include "drifa/training/run_files.h"

namespace fs = std::filesystem;

namespace drifa::training {

std::vector<TrainSummary> train_ensemble(const RunConfig& cfg, const std::string& dir, int members,
                                         const TrainOptions& opt, const DistributedEnv& ranks) {
  if (members < 1) throw Error("an ensemble needs at least 1 member, got " + std::to_string(members));
  std::optional<io::FolderLock> lock;  // rank 0 writes ensemble.json; each rank locks the members it trains
  if (ranks.rank == 0) lock.emplace(dir);
  else fs::create_directories(dir);
  settings::check_integer("command line", "--members", members, settings::limits::kEnsembleMembers);
  const auto manifest = run_files::path(dir, run_files::kEnsemble);
  nlohmann::json names = nlohmann::json::array();
  for (int k = 0; k < members; ++k) names.push_back("member-" + std::to_string(k));
  const nlohmann::json j = {{"config", cfg.to_json()}, {"members", names}};
  if (fs::exists(manifest)) {
    const auto old = run_files::read_ensemble(dir);
    if (old.config != j["config"])
      throw Error(dir + ": holds an ensemble of another configuration (ensemble.json); choose another folder");
    if (old.members.size() > names.size())
      throw Error(dir + ": holds an ensemble of " + std::to_string(old.members.size()) + " members; ask for at least as many");
  }
  if (ranks.rank == 0) io::atomic_write_text(manifest, j.dump(2));
  std::vector<TrainSummary> out;
  for (int k = 0; k < members; ++k) {
    if (k % ranks.world_size != ranks.rank) continue;
    const auto run = (fs::path(dir) / names[k].get<std::string>()).string();
    if (fs::exists(run_files::path(run, run_files::kDone))) {
      if (!opt.quiet) std::cerr << "member " << k << ": already trained (" << run << ")\n";
      TrainSummary s;
      const auto done = run_files::read_done(run);
      s.best_epoch = done.best_epoch;
      s.best_val_loss = done.best_val_loss;
      s.best_model = run_files::path(run, run_files::kBestModel);
      out.push_back(s);
      continue;
    }
    RunConfig c = cfg;
    c.member = k;
    TrainOptions o = opt;
    o.resume = fs::exists(run_files::path(run, run_files::kCheckpoint));
    if (!opt.quiet)
      std::cerr << "member " << k + 1 << "/" << members << (o.resume ? " (resuming)" : "")
                << (ranks.active() ? " on rank " + std::to_string(ranks.rank) : std::string()) << "\n";
    out.push_back(train(c, run, o));
  }
  return out;
}

std::vector<std::string> member_runs(const std::string& dir, bool finished_only) {
  if (!fs::is_directory(dir)) throw Error(dir + ": no such folder (a training run or ensemble folder was expected)");
  if (!fs::exists(run_files::path(dir, run_files::kEnsemble))) {
    if (!fs::exists(run_files::path(dir, run_files::kConfig)))
      throw Error(dir + ": neither an ensemble folder (ensemble.json) nor a training run folder (config.json)");
    return {dir};
  }
  const auto manifest = run_files::read_ensemble(dir);
  std::vector<std::string> runs;
  for (const auto& n : manifest.members) {
    const auto run = run_files::path(dir, n);
    if (!finished_only) {
      if (fs::exists(run_files::path(run, run_files::kConfig))) runs.push_back(run);
      continue;
    }
    if (!fs::exists(run_files::path(run, run_files::kDone)))
      throw Error(run + ": this ensemble member has not finished training; run `drifa ensemble` again to complete it");
    runs.push_back(run);
  }
  if (runs.empty()) throw Error(dir + ": the ensemble has no trained member yet");
  return runs;
}

Ensemble open_ensemble(const std::string& dir, torch::Device device) {
  const auto runs = member_runs(dir);
  Ensemble e;
  e.dir = dir;
  e.run = RunFolder::open(runs[0]);
  const auto split = e.run.data.to_json();
  for (const auto& r : runs) {
    const auto member = RunFolder::open(r);
    if (member.data.to_json() != split)
      throw Error(r + ": its data split differs from " + runs[0] + "'s; the members of an ensemble must share one split");
    auto net = e.run.load_model(member.best_model());
    e.weights.push_back(io::weights_hash(*net));
    net->to(device);
    e.nets.push_back(net);
  }
  return e;
}

std::optional<calibration::Calibration> Ensemble::calibration() const {
  auto cal = run_files::read_calibration(dir);
  if (!cal) return cal;
  const auto source = run_files::path(dir, run_files::kCalibration);
  if (cal->models != static_cast<int64_t>(nets.size()))
    throw Error(source + ": models: found " + std::to_string(cal->models) + ", allowed the " + std::to_string(nets.size()) +
                " models of " + dir + "; run `drifa calibrate " + dir + "` again");
  cal->check_weights(weights, source);
  return cal;
}

}  // namespace drifa::training
