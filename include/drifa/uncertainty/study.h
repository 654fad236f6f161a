#pragma once
// The uncertainty study of spec section 7 over a test set: K models (an ensemble), T Monte
// Carlo passes each, compared with one deterministic model, one model's MC passes and the
// ensemble without MC, so the gain of each step is visible.
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "drifa/calibration/calibration.h"
#include "drifa/data/loader.h"
#include "drifa/evaluation/bootstrap.h"
#include "drifa/inputs/partners.h"
#include "drifa/model/drifa_net.h"
#include "drifa/inference/method.h"

namespace drifa::uncertainty {

struct StudyOptions {
  inference::MCOptions mc;  // passes, seed, shared prefix or naive loop
  inference::DrawOptions draw;  // what methods with draws of their own use (test-time augmentation's views)
  int batch_size = 32, workers = 2;
  torch::Device device = torch::kCPU;
  std::vector<double> coverages = {1.0, 0.9, 0.8, 0.7, 0.5};
  bool quiet = true;
  // What the network is given (evaluation::EvalOptions::plan). With partners, each pass's
  // probability is the mean over the row's partners, whose masks are drawn per partner row.
  inputs::InputPlan plan;
};

struct StudySamples {
  std::vector<torch::Tensor> labels;                      // per task [N] (-1: not scored)
  std::vector<std::vector<torch::Tensor>> deterministic;  // [model][task] [N, K]
  std::vector<std::vector<torch::Tensor>> mc;             // [model][task] [T, N, K]
  double mc_seconds = 0;                                  // time spent in the MC passes
  // With partners: per task [N], model 0's deterministic partner spread (inputs::partner_spread).
  std::vector<torch::Tensor> partner_information, partner_sd;
  // Draws of methods of their own (test-time augmentation): name -> [model][task] [S, N, K].
  std::map<std::string, std::vector<std::vector<torch::Tensor>>> own;
  int64_t views = 0;      // test-time augmentation views drawn
  bool views_mc = false;  // and Monte Carlo passes of each view
  inference::Counts counts() const;
};

// Every model over the examples: one deterministic pass and opt.mc.passes MC passes each; model
// k's masks come from seed mix(opt.mc.seed, k). Images are decoded once for all models.
StudySamples sample_models(std::vector<DRIFANet>& nets, const std::vector<data::Example>& examples,
                           data::ImageCache& cache, const StudyOptions& opt);

// One task's draws, as the predictive methods read them.
inference::TaskSamples task_samples(const StudySamples& s, size_t task);

// Per task, the samples [S, N, K] of each predictive method available for what was drawn
// (inference/method.h), in the registry's order.
std::vector<std::pair<std::string, torch::Tensor>> method_samples(const StudySamples& s, size_t task);

struct SummaryOptions {
  std::vector<double> coverages = {1.0, 0.9, 0.8, 0.7, 0.5};
  // Applied when set: each method's temperature (its summary is then of the calibrated
  // probabilities, with the raw ones' NLL, Brier, ECE and reliability under
  // "before_calibration") and its conformal sets at each alpha ("conformal").
  const calibration::Calibration* calibration = nullptr;
  std::vector<double> alphas = {0.1};
  uint64_t seed = 0;  // aps_randomized draws of the scored part (calibration::Part::Test)
  evaluation::BootstrapOptions ci;
  std::vector<std::string> groups;  // per example ("" = its own): cluster intervals and group-level rows
  std::string aggregate = "mean";
};

// Per task, per method: task_summary() of each method_samples(), calibrated as above.
nlohmann::json summarise(const StudySamples& s, const ModelConfig& cfg, const SummaryOptions& opt = {});

// samples.csv: one row per scored (sample, task) with the final method's (ensemble, else mc)
// mean probabilities (calibrated when cal is set), prediction and per-sample measures.
void write_samples_csv(const std::string& path, const StudySamples& s, const std::vector<data::Example>& examples,
                       const ModelConfig& cfg, const calibration::Calibration* cal = nullptr);

}  // namespace drifa::uncertainty
