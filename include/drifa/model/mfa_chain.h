#pragma once
// MFA's full-resolution chain (HIFA's four 1x1 convolutions, CLIA's first) over the whole batch
// as one autograd node, for float32 CPU training: forward the same operations as the plain path
// (oneDNN's channels-last 1x1 convolutions, ATen's sigmoid, the pooling kernels), backward each
// map's gradient in one pass: the pools' gradients (the mean's spread, the max's tied share),
// the convolutions' input gradients and the sigmoid's derivative summed where they meet.
//
// Why: as ATen ops, one stem-size MFA (batch 32, 64 channels, 64x64, channels-last) spent about
// 70 ms per backward in elementwise passes (gradient sums 32, sigmoid_backward 27, the mean's
// expand 14; LibTorch 1.13's profile, 2-core AVX-512 Xeon) against 100 ms in its convolution
// backward GEMMs. Measured on the same machine, training step, batch 32: demo widths 244-294 ms
// against 304-340 (best of 10 steps, three alternating runs), paper widths 4.33-5.35 s against
// 4.73-5.42 (best of 2-3 steps, five runs; about 5%, within the machine's drift).
// conv4 feeds only a max: its output's gradient is zero but at each plane's maxima, so its
// backward adds a row of w4 per maximum instead of a dense GEMM over zeros (oneDNN's dense
// backward where ties are many). One stem-size chain, forward + backward: 162-167 ms against
// 176-183 (best of 9, two alternating runs, same machine).
// Memory: it keeps three of the seven full-resolution maps (a1, a2, a3) and x itself, which MFA's
// product keeps anyway: the channels-last copy of x, u = a1 + a2 and CLIA's map are made again in
// backward (a copy, an add, one 1x1 convolution), z4 is replaced by its maxima' positions. Paper
// widths, training step, batch 32 (same machine): peak RSS 3374 MB against 4185-4208 before, time
// within the drift (3.55-3.61 s against 3.45-3.63, three warm-up steps, two alternating rounds).
//
// A tuning knob (training/tuning.h: kept where it measures faster), off by default: the sums
// run in another order than autograd's, so the gradients match the plain path within float
// rounding (tested), not bit for bit, and a default change would move every seeded run.
#include "drifa/model/attention_kernels.h"  // MFAPools, MFAWeights

namespace drifa {

// The pooled descriptors of fused_mfa_pools (attention_kernels.h), the same values as the plain path.
MFAPools mfa_chain(const torch::Tensor& x, const MFAWeights& w);

// float32 CPU [B, C, H, W] outside autocast.
bool mfa_chain_applies(const torch::Tensor& x);

void set_mfa_chain(bool on);
bool mfa_chain();

}  // namespace drifa
