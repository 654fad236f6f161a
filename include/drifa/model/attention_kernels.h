#pragma once
// Fused CPU kernels for the attention's full-resolution work: MFA's HIFA + CLIA chain and MIFA's
// per-modality local branch (spec sections 2 and 3), forward and backward.
//
// Why: at the sizes people train on CPUs an MFA is some 25 ATen ops forward and 40 backward,
// each a pass over a full map and an autograd node with its saved tensors; at demo widths that
// overhead, not the arithmetic, made DRIFA 6x the cost of the plain ResNet. Here each sample's
// 1x1 convolutions are one GEMM each ([C, C] x [C, H*W], NCHW as it lies), the bias, sigmoid,
// sums and pools are one pass over the GEMM's output while it is in cache, and the backward
// pass recomputes the chain sample by sample instead of keeping it for the whole batch.
// Gradients follow ATen's convention for pools: tied minima or maxima share the gradient evenly.
//
// Both take contiguous float32 or float64 CPU tensors (kernels_apply); anything else (CUDA,
// bfloat16 autocast, channels-last) takes the same arithmetic as plain ATen ops in the modules.
//
// Chunks of samples run side by side on ATen's threads, each thread its own chunks from GEMM to
// pools (OpenBLAS on one thread, as configure_threads sets it), each thread summing its own
// weight gradients, added up in chunk order.
//
// Off by default (set_attention_kernels): on a 2-core AVX-512 EPYC with Debian's LibTorch 1.13,
// a demo-width training step (batch 32) took 244-282 ms with them against 234-247 ms for the
// plain arithmetic, with peak memory 308 against 424 MB. (Before chunks ran side by side and
// OpenBLAS ran on one thread, OpenBLAS's own threads competed with ATen's OpenMP pool: 629 ms
// against 343 at batch 16.) What is left is the GEMMs' speed at 16..128 channels; oneDNN's
// matmul with the sigmoid as a post-op is the next thing to try.
#include <torch/types.h>

namespace drifa {

// The pooled descriptors of one MFA, each [B, C]:
//   a1 = sigmoid(conv1 x), a2 = sigmoid(conv2 a1), a3 = sigmoid(conv3 (a1 + a2)), z4 = conv4 a3,
//   c1 = sigmoid(clia.conv1 x)
//   mean_a1 = GAP(a1), max_a2 = GMP(a2), mean_a3 = GAP(a3), max_z4 = GMP(z4), mean_c1 = GAP(c1)
// (HIFA's GMP(a4) = sigmoid(max_z4): sigmoid is increasing.)
struct MFAPools {
  torch::Tensor mean_a1, max_a2, mean_a3, max_z4, mean_c1;
};

// The weights of the five 1x1 convolutions, as the modules hold them ([C, C, 1, 1] and [C]).
struct MFAWeights {
  torch::Tensor w1, b1, w2, b2, w3, b3, w4, b4, wc, bc;
};

MFAPools fused_mfa_pools(const torch::Tensor& x, const MFAWeights& w);

// MIFA's local branch of one modality: q = sigmoid(conv x); returns {min, mean, max} of q over
// H and W, each [B, C].
struct LocalPools {
  torch::Tensor min, mean, max;
};
LocalPools fused_local_pools(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

// Whether the kernels take x (and weights of the same dtype and device).
bool kernels_apply(const torch::Tensor& x);

// Process-wide opt-in for MFA and MIFA to use these kernels (with fused_attention() also on).
void set_attention_kernels(bool on);
bool attention_kernels();

}  // namespace drifa
