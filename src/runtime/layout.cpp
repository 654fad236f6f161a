#include "drifa/runtime/layout.h"

#include <torch/torch.h>

namespace drifa {

void use_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard ng;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
}

torch::Tensor to_channels_last(const torch::Tensor& x) {
  return x.dim() == 4 ? x.contiguous(at::MemoryFormat::ChannelsLast) : x;
}

}  // namespace drifa
