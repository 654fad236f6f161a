#pragma once
// MFA: multi-branch fusion attention inside one modality = HIFA (global) + CLIA (local).
//   att = sigmoid(global_scale * g + local_scale (.) l),  out = x (.) att (.) alpha
#include "drifa/model/clia.h"
#include "drifa/model/hifa.h"
#include "drifa/model/mfa_chain.h"  // set_mfa_chain: MFA's chain as one autograd node
#include "drifa/model/recompute.h"  // set_attention_recompute: MFA's maps recomputed in backward

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

}  // namespace drifa
