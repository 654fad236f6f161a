#pragma once
// Architecture summary for `drifa info`: per-stage shapes, parameters, multiply-accumulates.
#include <cstdint>
#include <string>
#include <vector>

#include "drifa/model/config.h"

namespace drifa {

struct StageSummary {
  int64_t index;        // -1 for the stem
  int64_t in_channels, out_channels, stride;
  int64_t out_size;     // spatial size (square) after this stage
  int64_t params;       // per branch (stage + post-MFA), plus this stage's fusion
  int64_t macs;         // per sample, all modalities, conv and linear layers
};

struct ModelSummary {
  ModelConfig config;
  std::vector<StageSummary> stages;  // stem first
  int64_t head_params = 0;
  int64_t total_params = 0;          // equals count_parameters() of the built model
  int64_t total_macs = 0;            // conv + linear multiply-accumulates per sample
  double gmac() const { return static_cast<double>(total_macs) / 1e9; }  // the same, in GMAC
};

// Computed from the configuration alone (no model is built).
ModelSummary summarize(const ModelConfig& cfg);
std::string format_summary(const ModelSummary& s);

// A rough upper estimate of the memory a forward pass (or, with training, a training step with
// Adam) of `batch` samples needs: float32 parameters (x4 in training: weights, gradients, two
// Adam moments) plus the activations kept for the backward pass (about 40 maps per stage with
// attention) or, in inference, a few of the largest maps.
int64_t estimate_memory_bytes(const ModelConfig& cfg, int64_t batch, bool training);
// Refuses, naming source and both numbers, a configuration whose estimate exceeds the memory
// this machine has available (runtime/memory: available_memory_bytes).
void check_fits_in_memory(const ModelConfig& cfg, int64_t batch, bool training, const std::string& source);

}  // namespace drifa
