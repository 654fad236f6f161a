#pragma once
// Memory layout: channels-last (NHWC) lets oneDNN run convolutions without reordering, a real
// speed lever on AVX-512 CPUs. LibTorch's C++ Module has no to(memory_format), so the 4-D
// parameters are converted here; inputs are converted with to_channels_last(tensor).
#include <torch/nn/module.h>

namespace drifa {

void use_channels_last(torch::nn::Module& module);
torch::Tensor to_channels_last(const torch::Tensor& x);

}  // namespace drifa
