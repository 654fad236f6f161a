#pragma once
// Global pooling statistics over H and W, the arithmetic every attention block ends in
// (GAP, GMP, GMinP of spec sections 2 and 3), with one fused CPU kernel per direction.
//
// Why: the attention blocks pool many full-size maps. As separate ATen ops, the backward of
// amax/amin alone builds an equality mask, converts it to float twice, sums and divides it:
// about 9% of a paper-size training step on the 2-core CPU. The fused kernel reads a map once
// forward and writes its gradient once backward. Gradients follow ATen's convention (a tie for
// the minimum or maximum shares the gradient evenly).
//
// The kernel runs on contiguous float32 CPU tensors; anything else (CUDA, bfloat16 autocast,
// channels-last) takes the same arithmetic in plain ATen ops.
#include <torch/types.h>

namespace drifa {

struct SpatialStats {
  torch::Tensor min, mean, max;  // each [B, C]
};

// x [B, C, H, W] -> {amin, mean, amax} over H and W. (A mean alone is ATen's x.mean({2, 3}):
// already one vectorised pass forward and an expand backward.)
SpatialStats spatial_stats(const torch::Tensor& x);
torch::Tensor spatial_max(const torch::Tensor& x);   // == x.amax({2, 3})

// Process-wide switch between the fused kernels (default) and the spec's arithmetic written
// as plain ATen ops; tests and the benchmark compare the two.
void set_fused_attention(bool on);
bool fused_attention();

}  // namespace drifa
