#include "drifa/model/pointwise_layout.h"

namespace drifa {

torch::Tensor pointwise_layout(const torch::Tensor& x) {
  const auto t = x.scalar_type();
  if (!x.device().is_cpu() || x.dim() != 4 || (t != torch::kFloat32 && t != torch::kBFloat16)) return x;
  return x.contiguous(at::MemoryFormat::ChannelsLast);
}

}  // namespace drifa
