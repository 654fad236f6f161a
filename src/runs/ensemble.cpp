#include "drifa/runs/ensemble.h"

#include <filesystem>

#include "drifa/error.h"
#include "drifa/runs/files.h"
#include "drifa/runs/model_file.h"

namespace fs = std::filesystem;

namespace drifa::runs {

std::vector<std::string> member_runs(const std::string& dir, bool finished_only) {
  if (!fs::is_directory(dir)) throw Error(dir + ": no such folder (a training run or ensemble folder was expected)");
  if (!fs::exists(runs::files::path(dir, runs::files::kEnsemble))) {
    if (!fs::exists(runs::files::path(dir, runs::files::kConfig)))
      throw Error(dir + ": neither an ensemble folder (ensemble.json) nor a training run folder (config.json)");
    return {dir};
  }
  const auto manifest = runs::files::read_ensemble(dir);
  std::vector<std::string> runs;
  for (const auto& n : manifest.members) {
    const auto run = runs::files::path(dir, n);
    if (!finished_only) {
      if (fs::exists(runs::files::path(run, runs::files::kConfig))) runs.push_back(run);
      continue;
    }
    if (!fs::exists(runs::files::path(run, runs::files::kDone)))
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
    e.weights.push_back(runs::weights_hash(*net));
    net->to(device);
    e.nets.push_back(net);
  }
  return e;
}

std::optional<calibration::Calibration> Ensemble::calibration() const {
  auto cal = runs::files::read_calibration(dir);
  if (!cal) return cal;
  const auto source = runs::files::path(dir, runs::files::kCalibration);
  if (cal->models != static_cast<int64_t>(nets.size()))
    throw Error(source + ": models: found " + std::to_string(cal->models) + ", allowed the " + std::to_string(nets.size()) +
                " models of " + dir + "; run `drifa calibrate " + dir + "` again");
  cal->check_weights(weights, source);
  return cal;
}

}  // namespace drifa::runs
