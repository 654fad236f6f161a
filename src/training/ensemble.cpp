#include "drifa/training/ensemble.h"

#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "drifa/error.h"
#include "drifa/io/atomic_file.h"
#include "drifa/io/config_file.h"

namespace fs = std::filesystem;

namespace drifa::training {

std::vector<TrainSummary> train_ensemble(const RunConfig& cfg, const std::string& dir, int members,
                                         const TrainOptions& opt, const DistributedEnv& ranks) {
  if (members < 1) throw Error("an ensemble needs at least 1 member, got " + std::to_string(members));
  fs::create_directories(dir);
  const auto manifest = (fs::path(dir) / "ensemble.json").string();
  nlohmann::json names = nlohmann::json::array();
  for (int k = 0; k < members; ++k) names.push_back("member-" + std::to_string(k));
  const nlohmann::json j = {{"config", cfg.to_json()}, {"members", names}};
  if (fs::exists(manifest)) {
    const auto old = io::read_json(manifest);
    if (old.value("config", nlohmann::json()) != j["config"])
      throw Error(dir + ": holds an ensemble of another configuration (ensemble.json); choose another folder");
    if (old.value("members", nlohmann::json::array()).size() > names.size())
      throw Error(dir + ": holds an ensemble of " + std::to_string(old["members"].size()) + " members; ask for at least as many");
  }
  if (ranks.rank == 0) io::atomic_write_text(manifest, j.dump(2));
  std::vector<TrainSummary> out;
  for (int k = 0; k < members; ++k) {
    if (k % ranks.world_size != ranks.rank) continue;
    const auto run = (fs::path(dir) / names[k].get<std::string>()).string();
    if (fs::exists(fs::path(run) / "done.json")) {
      if (!opt.quiet) std::cerr << "member " << k << ": already trained (" << run << ")\n";
      TrainSummary s;
      const auto done = io::read_json((fs::path(run) / "done.json").string());
      s.best_epoch = done.value("best_epoch", 0);
      s.best_val_loss = done.value("best_val_loss", 0.0);
      s.best_model = (fs::path(run) / "best.safetensors").string();
      out.push_back(s);
      continue;
    }
    RunConfig c = cfg;
    c.member = k;
    TrainOptions o = opt;
    o.resume = fs::exists(fs::path(run) / "checkpoint.safetensors");
    if (!opt.quiet)
      std::cerr << "member " << k + 1 << "/" << members << (o.resume ? " (resuming)" : "")
                << (ranks.active() ? " on rank " + std::to_string(ranks.rank) : std::string()) << "\n";
    out.push_back(train(c, run, o));
  }
  return out;
}

std::vector<std::string> member_runs(const std::string& dir, bool finished_only) {
  const auto manifest = fs::path(dir) / "ensemble.json";
  if (!fs::exists(manifest)) {
    if (!fs::exists(fs::path(dir) / "config.json"))
      throw Error(dir + ": neither an ensemble folder (ensemble.json) nor a training run folder (config.json)");
    return {dir};
  }
  const auto j = io::read_json(manifest.string());
  std::vector<std::string> runs;
  for (const auto& n : j.at("members")) {
    const auto run = (fs::path(dir) / n.get<std::string>()).string();
    if (!finished_only) {
      if (fs::exists(fs::path(run) / "config.json")) runs.push_back(run);
      continue;
    }
    if (!fs::exists(fs::path(run) / "done.json"))
      throw Error(run + ": this ensemble member has not finished training; run `drifa ensemble` again to complete it");
    runs.push_back(run);
  }
  if (runs.empty()) throw Error(dir + ": the ensemble has no trained member yet");
  return runs;
}

Ensemble open_ensemble(const std::string& dir, torch::Device device) {
  const auto runs = member_runs(dir);
  Ensemble e;
  e.run = RunFolder::open(runs[0]);
  const auto split = e.run.data.to_json();
  for (const auto& r : runs) {
    const auto member = RunFolder::open(r);
    if (member.data.to_json() != split)
      throw Error(r + ": its data split differs from " + runs[0] + "'s; the members of an ensemble must share one split");
    auto net = e.run.load_model(member.best_model());
    net->to(device);
    e.nets.push_back(net);
  }
  return e;
}

}  // namespace drifa::training
