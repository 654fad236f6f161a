#pragma once
// The layout the attention's 1x1 convolutions (HIFA, CLIA, MIFA's local branch) run in.
//
// On the CPU, oneDNN computes a 1x1 convolution of a channels-last map as one GEMM over
// [B*H*W, C], forward and backward; of an NCHW map its backward reorders every map it touches
// and ran at a fifth of the forward's rate. At the paper's widths (2-core AVX-512 Xeon, batch 32,
// 128 px) a training step took 12.7 s with NCHW attention maps and 4.3-4.9 s in channels-last,
// the plain ResNet 1.4 s. So float32 and bfloat16 maps go channels-last (one copy of the block's
// input; a map already channels-last is taken as it is). float64 (the tests' reference
// arithmetic) and CUDA, where cuDNN chooses for itself, keep their layout.
#include <torch/types.h>

namespace drifa {

torch::Tensor pointwise_layout(const torch::Tensor& x);

}  // namespace drifa
