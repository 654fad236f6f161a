#pragma once
// Runs a model over a list of examples and gathers, per task, the labels, the probabilities and
// the loss: what validation, `drifa evaluate` and predictions.csv are made from.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "drifa/data/loader.h"
#include "drifa/evaluation/aggregate.h"
#include "drifa/evaluation/bootstrap.h"
#include "drifa/evaluation/metrics.h"
#include "drifa/inputs/partners.h"
#include "drifa/model/drifa_net.h"

namespace drifa::evaluation {

struct EvalOptions {
  int batch_size = 32;
  int workers = 2;
  bool bf16 = false;
  torch::Device device = torch::kCPU;
  std::vector<double> task_weights;  // empty = 1/T each
  std::vector<double> temperatures;  // per task, probabilities = softmax(logits / T); empty = 1
  // What the network is given: every modality (default), some absent, or (unpaired) K partners
  // for every modality but the one of each row's task; a row's probabilities are then the mean
  // over its partners.
  inputs::InputPlan plan;
  // Group-level metrics beside the image-level ones (aggregate.h): "mean" | "max" | "none".
  std::string aggregate = "mean";
};

struct EvalResult {
  std::vector<torch::Tensor> labels;  // per task [N] (-1 where not scored)
  std::vector<torch::Tensor> probs;   // per task [N, K_t]
  std::vector<double> task_loss;      // mean cross-entropy over scored samples (NaN if none)
  double loss = 0;                    // sum_t weight_t * task_loss_t
  std::vector<TaskMetrics> metrics;   // per task
  std::vector<double> temperatures;   // per task, as applied
  // With partners: per task [N] the partner spread of each row (inputs::partner_spread).
  std::vector<torch::Tensor> partner_information, partner_sd;
  std::vector<std::string> groups;  // per row, the example's group ("" = its own)
  std::string aggregate = "mean";
};

// Deterministic evaluation (Mode::Eval, through inference::Inferer).
EvalResult evaluate(DRIFANet& net, const std::vector<data::Example>& examples, data::ImageCache& cache,
                    const EvalOptions& opt);

// Summed task loss for one batch, tasks weighted; labels of -1 are ignored; a task without
// labels in the batch contributes nothing. class_weights: per task [K_t] (empty: unweighted),
// the task's loss then being the weighted mean sum_i w_{y_i} CE_i / sum_i w_{y_i}.
torch::Tensor multitask_loss(const std::vector<torch::Tensor>& logits, const std::vector<torch::Tensor>& labels,
                             const std::vector<double>& weights, const std::vector<torch::Tensor>& class_weights = {});

// One task's metrics as JSON: m.to_json, "ece", and with ci.resamples > 0 the bootstrap
// intervals ("intervals", bootstrap.h) of labels [N] and probs [N, K]. With groups (one per row)
// that hold several rows: the intervals are the cluster bootstrap's, and, unless aggregate is
// "none", "group_level" holds the same metrics of one aggregated prediction per group.
nlohmann::json task_metrics_json(const TaskMetrics& m, const torch::Tensor& labels, const torch::Tensor& probs,
                                 const std::vector<std::string>& class_names, const BootstrapOptions& ci,
                                 const std::vector<std::string>& groups = {}, const std::string& aggregate = "none");
// What task_metrics_json and the uncertainty summary share: into j, "intervals" (with ci.resamples
// > 0; the cluster bootstrap's when groups hold several rows) and, unless aggregate is "none",
// "group_level" (the metrics of one prediction per group, its "aggregate" and "groups"). Returns
// that block's group predictions, for the caller's own additions; nullopt when none was written.
std::optional<GroupPredictions> add_intervals_and_group_level(nlohmann::json& j, const torch::Tensor& labels,
                                                              const torch::Tensor& probs,
                                                              const std::vector<std::string>& class_names,
                                                              const BootstrapOptions& ci, const std::vector<std::string>& groups,
                                                              const std::string& aggregate);

// Per task the metrics, the loss and their bootstrap intervals ("intervals", bootstrap.h), and
// the group-level metrics when r's rows share groups.
nlohmann::json metrics_json(const EvalResult& r, const ModelConfig& cfg, const BootstrapOptions& ci = {});
}  // namespace drifa::evaluation
