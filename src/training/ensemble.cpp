#include "drifa/training/ensemble.h"

#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "drifa/error.h"
#include "drifa/io/atomic_file.h"
#include "drifa/io/config_file.h"
#include "drifa/io/folder_lock.h"
#include "drifa/runs/model_file.h"
#include "drifa/io/settings.h"
#include "drifa/runs/files.h"

namespace fs = std::filesystem;

namespace drifa::training {

std::vector<TrainSummary> train_ensemble(const runs::RunConfig& cfg, const std::string& dir, int members,
                                         const TrainOptions& opt, const DistributedEnv& ranks) {
  if (members < 1) throw Error("an ensemble needs at least 1 member, got " + std::to_string(members));
  std::optional<io::FolderLock> lock;  // rank 0 writes ensemble.json; each rank locks the members it trains
  if (ranks.rank == 0) lock.emplace(dir);
  else fs::create_directories(dir);
  settings::check_integer("command line", "--members", members, settings::limits::kEnsembleMembers);
  const auto manifest = runs::files::path(dir, runs::files::kEnsemble);
  nlohmann::json names = nlohmann::json::array();
  for (int k = 0; k < members; ++k) names.push_back("member-" + std::to_string(k));
  const nlohmann::json j = {{"config", cfg.to_json()}, {"members", names}};
  if (fs::exists(manifest)) {
    const auto old = runs::files::read_ensemble(dir);
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
    if (fs::exists(runs::files::path(run, runs::files::kDone))) {
      if (!opt.quiet) std::cerr << "member " << k << ": already trained (" << run << ")\n";
      TrainSummary s;
      const auto done = runs::files::read_done(run);
      s.best_epoch = done.best_epoch;
      s.best_val_loss = done.best_val_loss;
      s.best_model = runs::files::path(run, runs::files::kBestModel);
      out.push_back(s);
      continue;
    }
    runs::RunConfig c = cfg;
    c.member = k;
    TrainOptions o = opt;
    o.resume = fs::exists(runs::files::path(run, runs::files::kCheckpoint));
    if (!opt.quiet)
      std::cerr << "member " << k + 1 << "/" << members << (o.resume ? " (resuming)" : "")
                << (ranks.active() ? " on rank " + std::to_string(ranks.rank) : std::string()) << "\n";
    out.push_back(train(c, run, o));
  }
  return out;
}

}  // namespace drifa::training
