#pragma once
// MFA: multi-branch fusion attention inside one modality = HIFA (global) + CLIA (local).
//   att = sigmoid(global_scale * g + local_scale (.) l),  out = x (.) att (.) alpha
#include "drifa/model/clia.h"
#include "drifa/model/hifa.h"

namespace drifa {

class MFAImpl : public torch::nn::Module {
 public:
  explicit MFAImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);

  HIFA hifa{nullptr};
  CLIA clia{nullptr};
  torch::Tensor global_scale;  // [1]
  torch::Tensor local_scale;   // [C]
  torch::Tensor alpha;         // [C]
};
TORCH_MODULE(MFA);

// Whether training keeps MFA's full-resolution maps (HIFA's a1, a2, a1 + a2, a3, conv4's output,
// CLIA's sigmoid map, the channels-last copy of the input: seven maps the size of the input per
// MFA) or recomputes them from the input in the backward pass: the same operations on the same
// inputs, so the same gradients, for one more forward of the five 1x1 convolutions. Off by
// default: at the paper's widths (2-core AVX-512 Xeon, batch 32) recomputing took peak memory
// from 4169 to 2789 MB (the plain ResNet: 1275) and the step from 4.15 to 5.31 s.
// `drifa train --recompute-attention` turns it on for batches that would not fit otherwise.
void set_attention_recompute(bool on);
bool attention_recompute();

}  // namespace drifa
