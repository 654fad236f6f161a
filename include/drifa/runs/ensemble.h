#pragma once
// An ensemble folder (ensemble.json and member-0 .. member-(K-1), each a run folder; written by
// training::train_ensemble) or one run, opened for the uncertainty study, predictions and
// explanations.
#include <optional>
#include <string>
#include <vector>

#include "drifa/calibration/calibration.h"
#include "drifa/runs/run_folder.h"

namespace drifa::runs {

// The run folders of an ensemble folder (from ensemble.json), or {dir} when dir is one run.
// finished_only: every member must have finished (done.json), else drifa::Error; otherwise the
// members that have started (config.json) are listed, and at least one must have.
std::vector<std::string> member_runs(const std::string& dir, bool finished_only = true);

// An ensemble (or one run) opened for the uncertainty study, predictions and explanations.
struct Ensemble {
  std::string dir;                   // the folder opened (an ensemble folder or one run)
  RunFolder run;                     // member 0: config and split, shared by all members
  std::vector<DRIFANet> nets;        // each member's best.safetensors, on the device
  std::vector<std::string> weights;  // runs::weights_hash of each member, in order

  // dir's calibration.json, or nullopt when it has none. Refused (drifa::Error) when it was
  // fitted on another number of models or on other weights than these.
  std::optional<calibration::Calibration> calibration() const;
};
// Throws drifa::Error if a member's split differs from member 0's or its model does not fit it.
Ensemble open_ensemble(const std::string& dir, torch::Device device);

}  // namespace drifa::runs
