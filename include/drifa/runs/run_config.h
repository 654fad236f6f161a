#pragma once
// A training run's settings, read from one TOML file (see examples/) with command-line
// overrides applied by the CLI. Modalities, tasks and classes come from the data; the [model]
// table sets the network (widths, dropout, attention).
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "drifa/data/sources.h"
#include "drifa/data/transforms.h"
#include "drifa/model/config.h"

namespace drifa::runs {

struct TrainConfig {
  int epochs = 200;
  int batch_size = 32;
  double lr = 1e-3;
  std::vector<double> task_weights;  // empty = 1/T each (the authors' 0.5, 0.5)
  double plateau_factor = 0.2;
  int plateau_patience = 5;
  double min_lr = 1e-5;
  int early_stop_patience = 10;
  // "auto" (the fastest speed settings, bf16 among them where the CPU computes it natively, timed
  // on the run's first batch: training/tuning.h), "fp32" or "bf16" (bfloat16 autocast on CPU,
  // float16 on CUDA). The older key bf16 = true means "bf16".
  std::string precision = "auto";
  int64_t steps_per_epoch = 0;  // 0 = one pass over the epoch's pairing
  // Gradient accumulation: each optimizer step sums the gradients of this many micro-batches of
  // batch_size / micro_batches samples (per rank, batch_size / (ranks * micro_batches)).
  int micro_batches = 1;
  // Class imbalance. class_weights: "none", "balanced" (per task n / (k * n_c) over the training
  // split, scikit-learn's) or one list of k weights per task; the training loss is then each
  // task's weighted cross-entropy (weighted mean, as PyTorch's). sampling: "natural" or
  // "balanced" (every modality's epoch, or the paired cases by their first task, drawn with the
  // classes in equal shares: data::balanced_order).
  std::string class_weights = "none";
  std::vector<std::vector<double>> class_weight_lists;  // with class_weights = "given"
  std::string sampling = "natural";
  // Modality dropout: each training sample loses each modality with this probability (never all
  // of them), so the model learns to predict from the modalities a patient has (drifa_net.h).
  double modality_dropout = 0;
  nlohmann::json to_json() const;
  // The [train] table, read through the settings validator on top of base (a config file's
  // values, when the JSON holds command-line overrides).
  static TrainConfig from_json(const nlohmann::json& j, const std::string& source, const TrainConfig& base);
  static TrainConfig from_json(const nlohmann::json& j, const std::string& source = "run config");  // on the defaults
  void validate(const std::string& source) const;  // bounds and cross-field rules
};

struct RunConfig {
  uint64_t seed = 0;
  // Ensemble member: members share seed's split and evaluation partners; their initialisation,
  // pairing, augmentation and dropout come from train_seed(). Member 0 is a plain run.
  int member = 0;
  uint64_t train_seed() const;
  nlohmann::json model = nlohmann::json::object();  // [model]: widths, dropout, attention
  data::DataConfig data;
  TrainConfig train;
  data::AugmentConfig augment;
  // [evaluate] aggregate: group-level metrics from each group's images (evaluation/aggregate.h).
  std::string aggregate = "mean";
  // [tta] modality = "none" | "hflip" | "flips" | "dihedral": the views test-time augmentation may
  // show each modality (inference/methods/tta.cpp); a modality not named gets "hflip".
  std::map<std::string, std::string> tta;
  std::vector<std::string> tta_transforms(const ModelConfig& cfg) const;  // per modality, in the model's order
  // The [tta] table's one validator (the run config, and a model file's kTtaKey metadata).
  static std::map<std::string, std::string> read_tta(const nlohmann::json& raw, const std::string& source);

  static RunConfig from_toml(const std::string& path);
  // base: folder that relative data paths are taken from; source: the file, for messages.
  static RunConfig from_json(const nlohmann::json& j, const std::string& base, const std::string& source = "run config");
  nlohmann::json to_json() const;

  // The network for this data: modalities, tasks and class names from the prepared data.
  ModelConfig model_config(const data::PreparedData& d) const;
};

}  // namespace drifa::runs
