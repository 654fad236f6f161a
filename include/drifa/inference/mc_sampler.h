#pragma once
// Monte Carlo dropout sampling (spec section 7), fast and reproducible.
//
// Everything before the first dropout (stems and RRA_0, DRIFANet::prefix) is deterministic, so
// it runs once per input; the passes then share it and run together, several per call, as one
// larger batch through DRIFANet::suffix. Every sample's dropout masks come from its own
// generator seeded by (seed, sample id, pass), so the fast path and the naive loop of full
// forward passes draw the same masks and give the same probabilities.
#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "drifa/model/drifa_net.h"

namespace drifa::inference {

struct MCOptions {
  int passes = 30;
  uint64_t seed = 0;
  bool share_prefix = true;  // false: the naive loop, one full forward pass per pass
  int rows_per_call = 256;   // with share_prefix: passes are grouped so a call sees about this many rows
  bool bf16 = false;
};

// inputs: one batch (M tensors [B, C, H, W] on the model's device); ids: a stable id per row
// (e.g. the example's index in its list). The model is put in MCSample mode for the call.
// Returns per task the softmax probabilities of every pass, [passes, B, K_t], float32 on the CPU.
std::vector<torch::Tensor> mc_sample(DRIFANet& net, const std::vector<torch::Tensor>& inputs,
                                     const std::vector<int64_t>& ids, const MCOptions& opt);

// The same from the batch's DRIFANet::prefix() already computed (the prefix has no dropout, so it
// is the same in Eval and MCSample mode): callers that also need the deterministic pass share it.
std::vector<torch::Tensor> mc_sample_from_prefix(DRIFANet& net, const std::vector<torch::Tensor>& prefix,
                                                 const std::vector<int64_t>& ids, const MCOptions& opt);

// The generator of one sample's masks in one pass.
at::Generator pass_generator(uint64_t seed, int64_t id, int64_t pass);

}  // namespace drifa::inference
