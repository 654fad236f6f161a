#pragma once
// Ensembles (spec section 7: 5 independently trained models): K runs of one config that share
// the data split and differ in initialisation, pairing, augmentation and dropout
// (RunConfig::member). Folder: ensemble.json and member-0 .. member-(K-1), each a run folder.
#include <optional>
#include <string>
#include <vector>

#include "drifa/calibration/calibration.h"
#include "drifa/training/run_folder.h"
#include "drifa/training/trainer.h"

namespace drifa::training {

// Trains the members one after another. Resumable model by model: a member with done.json is
// kept, one with a checkpoint resumes, the others start. Re-running with another config is an error.
// Spread over ranks (torchrun's environment, `--nproc`): rank r trains the members k with
// k % world_size == r, each on its own; no communication is needed.
std::vector<TrainSummary> train_ensemble(const RunConfig& cfg, const std::string& dir, int members,
                                         const TrainOptions& opt, const DistributedEnv& ranks = {});

// The run folders of an ensemble folder (from ensemble.json), or {dir} when dir is one run.
// finished_only: every member must have finished (done.json), else drifa::Error; otherwise the
// members that have started (config.json) are listed, and at least one must have.
std::vector<std::string> member_runs(const std::string& dir, bool finished_only = true);

// An ensemble (or one run) opened for the uncertainty study, predictions and explanations.
struct Ensemble {
  std::string dir;                   // the folder opened (an ensemble folder or one run)
  RunFolder run;                     // member 0: config and split, shared by all members
  std::vector<DRIFANet> nets;        // each member's best.safetensors, on the device
  std::vector<std::string> weights;  // io::weights_hash of each member, in order

  // dir's calibration.json, or nullopt when it has none. Refused (drifa::Error) when it was
  // fitted on another number of models or on other weights than these.
  std::optional<calibration::Calibration> calibration() const;
};
// Throws drifa::Error if a member's split differs from member 0's or its model does not fit it.
Ensemble open_ensemble(const std::string& dir, torch::Device device);

}  // namespace drifa::training
