#pragma once
// Ensembles (spec section 7: 5 independently trained models): K runs of one config that share
// the data split and differ in initialisation, pairing, augmentation and dropout
// (runs::RunConfig::member). Folder: ensemble.json and member-0 .. member-(K-1), each a run folder.
#include <optional>
#include <string>
#include <vector>

#include "drifa/runs/ensemble.h"
#include "drifa/training/trainer.h"

namespace drifa::training {

// Trains the members one after another. Resumable model by model: a member with done.json is
// kept, one with a checkpoint resumes, the others start. Re-running with another config is an error.
// Spread over ranks (torchrun's environment, `--nproc`): rank r trains the members k with
// k % world_size == r, each on its own; no communication is needed.
std::vector<TrainSummary> train_ensemble(const runs::RunConfig& cfg, const std::string& dir, int members,
                                         const TrainOptions& opt, const DistributedEnv& ranks = {});

}  // namespace drifa::training
