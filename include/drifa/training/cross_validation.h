#pragma once
// Stratified k-fold cross-validation of one run config (`drifa cv`).
//
// The config's test part (a test source, or test_fraction of the data) stays held out. Its
// training and validation items together are dealt into k stratified folds (seeded,
// data::cv_fold); fold f's run trains on the other folds (less a stratified validation part
// for early stopping and the learning-rate schedule) and scores fold f. Folder:
//   cv.json                    folds, the config, the fold folder names
//   fold-0 .. fold-(k-1)       one resumable run folder each (the fold is its test part)
//   predictions.csv            every item's out-of-fold prediction, pooled
//   cv_metrics.json            per task: metrics per fold, their mean and standard deviation,
//                              the pooled out-of-fold metrics with bootstrap intervals, and on
//                              the held-out test part each fold model and their average
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "drifa/training/trainer.h"

namespace drifa::training {

// Trains the fold runs one after another (resumable fold by fold, like an ensemble's members);
// spread over ranks: rank r trains the folds f with f % world_size == r. Re-running with
// another config or fold count is an error.
void train_folds(const runs::RunConfig& cfg, const std::string& dir, int folds, const TrainOptions& opt,
                 const DistributedEnv& ranks = {});

// Pools the finished folds: writes predictions.csv and cv_metrics.json, returns the latter.
nlohmann::json summarise_folds(const std::string& dir, torch::Device device, const evaluation::BootstrapOptions& ci = {});

// The fold run folders of a cv folder (from cv.json), each checked to have finished.
std::vector<std::string> fold_runs(const std::string& dir);

}  // namespace drifa::training
