#pragma once
// The authors' recipe (spec section 7) as a resumable run in a folder:
//   Adam; loss sum_t weight_t * CE_t; reduce-on-plateau of the validation loss; early stopping;
//   the best model by validation loss; optional bf16 autocast.
// Run folder: config.json, split.json, checkpoint.safetensors (last epoch, resumable),
// best.safetensors (model file), log.csv, log.json, done.json (when training finished); after training, the test evaluation
// metrics.json and predictions.csv.
#include <functional>
#include <string>

#include "drifa/evaluation/evaluator.h"
#include "drifa/runtime/distributed.h"
#include "drifa/runs/run_config.h"

namespace drifa::training {

struct TrainOptions {
  bool resume = false;  // continue from the checkpoint; with none yet, start (a differing config.json is refused)
  bool quiet = false;
  torch::Device device = torch::kCPU;
  bool evaluate_test = true;                       // evaluate best.safetensors on the test part at the end
  std::function<void(int64_t epoch)> on_epoch_end;  // after the epoch's checkpoint is written
  // Data-parallel training: every rank runs train() with the same config and run folder. Each
  // global batch of batch_size is split into equal shards, one per rank (and micro-batch);
  // gradients are averaged over the ranks; BatchNorm statistics are per rank during the step and
  // rank 0's running statistics are broadcast after each epoch; rank 0 alone writes the folder.
  // Same trajectory as one process with micro_batches = ranks (up to float rounding; with
  // dropout the ranks draw their own masks).
  ProcessGroup* group = nullptr;
  // A split made by the caller (cross-validation folds) instead of prepare_data(cfg.data).
  const data::PreparedData* data = nullptr;
  // With precision "auto": where measured speed settings are kept (training/tuning.h): a file,
  // "none" (measure every run), or "" for the default (runtime/tuning_cache.h).
  std::string tuning_cache;
};

struct TrainSummary {
  int64_t epochs_run = 0, best_epoch = 0;
  double best_val_loss = 0;
  bool early_stopped = false;
  std::string best_model;
  nlohmann::json test_metrics;  // null unless evaluate_test
};

// The per-task class weights of the training loss (runs::TrainConfig::class_weights); empty when none.
std::vector<torch::Tensor> training_class_weights(const runs::TrainConfig& tc, const data::PreparedData& d, const ModelConfig& mcfg);

// Throws drifa::Error for bad data or configs, an existing run without resume, a non-finite loss.
TrainSummary train(const runs::RunConfig& cfg, const std::string& run_dir, const TrainOptions& opt);

struct EvaluateOptions {
  torch::Device device = torch::kCPU;
  bool bf16 = false;
  // Apply the model file's calibration (its deterministic temperatures) when it has one.
  bool calibrated = true;
  evaluation::BootstrapOptions ci;  // intervals of metrics.json
  data::ImageCache* cache = nullptr;  // images already decoded (optional)
  // Unpaired runs, > 0: also score every task with its other modalities marginalised over
  // bank partners, with 1 and with this many ("partners" in metrics.json).
  int64_t partners = 0;
  // Modality names left out (missing.json): one pattern, or {"all"} for every pattern with at
  // least one modality present. Each row scores the tasks that can be scored without them.
  std::vector<std::string> missing;
};

// Evaluates a model on a run's saved split ("val" or "test"); writes metrics.json and
// predictions.csv into out_dir (with missing: missing.json too). Prints nothing.
nlohmann::json evaluate_run(const std::string& run_dir, const std::string& model_path, const std::string& part,
                            const std::string& out_dir, const EvaluateOptions& opt = {});

}  // namespace drifa::training
