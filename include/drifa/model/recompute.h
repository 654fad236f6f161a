#pragma once
// Recomputing the attention's full-resolution maps in the backward pass instead of keeping them.
//
// Training keeps, per MFA, HIFA's a1, a2, a1 + a2, a3, conv4's output, CLIA's sigmoid map and the
// channels-last copy of the input, and per MIFA and modality the local branch's copy and sigmoid
// map: about nine maps the size of each stage's output per modality. With recompute on, only
// the block's input is kept (its output's product keeps it anyway); the backward pass runs the
// same operations on the same input again with autograd on (and under autocast if the forward
// pass ran under it) and differentiates that, so the gradients are the same, for one more forward of the 1x1 convolutions. Precision auto times it
// as a memory knob and keeps it unless it makes the step slower (training/tuning.h; at the
// paper's widths on a 2-core AVX-512 Xeon: 37% less peak memory, the time within noise);
// `drifa train --recompute-attention` turns it on whatever the precision.
#include <functional>
#include <vector>

#include <torch/types.h>

namespace drifa {

void set_attention_recompute(bool on);
bool attention_recompute();

// What a block computes from its input x: a few small tensors (pooled descriptors) through
// full-resolution maps that are not to be kept. It must be deterministic (no dropout) and read
// no parameter outside `weights`.
using Recomputable = std::function<std::vector<torch::Tensor>(const torch::Tensor& x)>;

// f(x) without keeping f's intermediate maps: the backward pass recomputes them from x. The
// gradients reach x and `weights` (the parameters f reads).
std::vector<torch::Tensor> recomputed(const torch::Tensor& x, const std::vector<torch::Tensor>& weights, Recomputable f);

}  // namespace drifa
