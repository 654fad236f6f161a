#include "drifa/model/mfa.h"

#include <torch/torch.h>

namespace drifa {

MFAImpl::MFAImpl(int64_t c) {
  hifa = register_module("hifa", HIFA(c));
  clia = register_module("clia", CLIA(c));
  global_scale = register_parameter("global_scale", torch::ones({1}));
  local_scale = register_parameter("local_scale", torch::ones({c}));
  alpha = register_parameter("alpha", torch::ones({c}));
}

torch::Tensor MFAImpl::forward(const torch::Tensor& x) {
  auto g = hifa(x);  // [B, C, 1, 1]
  auto l = clia(x);  // [B, C, 1, 1]
  auto att = torch::sigmoid(global_scale * g + local_scale.view({1, -1, 1, 1}) * l);
  return x * (att * alpha.view({1, -1, 1, 1}));
}

}  // namespace drifa
