#pragma once
// Numeric precision from the hardware: what the processor offers (read from /proc/cpuinfo) and
// which precision a run uses. bf16 autocast pays only where the CPU computes bf16 natively
// (AVX512_BF16 or AMX); elsewhere oneDNN emulates it and it is several times slower than fp32.
#include <string>

#include <torch/types.h>

namespace drifa {

enum class Precision { Auto, FP32, BF16 };

Precision parse_precision(const std::string& s, const std::string& where = "precision");  // throws drifa::Error
std::string to_string(Precision p);

struct CpuFeatures {
  std::string model;  // "model name" of the first processor, or "unknown"
  bool avx2 = false, avx512f = false, avx512_bf16 = false, amx_bf16 = false;
  // oneDNN's kernel ISA in this process (onednn_isa()), "" where unknown: ONEDNN_MAX_CPU_ISA can
  // cap it below the processor's, and then bf16 would be emulated after all.
  std::string kernels_isa;
  bool native_bf16() const { return avx512_bf16 || amx_bf16; }
  bool bf16_kernels() const {
    return native_bf16() && (kernels_isa.empty() || kernels_isa.find("bf16") != std::string::npos ||
                             kernels_isa.find("amx") != std::string::npos);
  }
};

// The flags of a /proc/cpuinfo text (the first processor's); an empty text gives no features
// (kernels_isa stays "").
CpuFeatures parse_cpuinfo(const std::string& text);
// This machine's, read once, with oneDNN's kernel ISA.
const CpuFeatures& cpu_features();
// "AMD EPYC 9B14: avx2 avx512f avx512_bf16 (native bf16)", for logs, `drifa info` and benchmarks.
std::string isa_summary(const CpuFeatures& cpu);
// The instruction set oneDNN's convolution kernels use in this process ("avx512_core_bf16",
// "avx2", ...; oneDNN's cpu_isa_ names without the prefix): the processor's, or less where
// ONEDNN_MAX_CPU_ISA caps it. "unknown" where LibTorch carries its own oneDNN without exported
// symbols (as the CUDA wheels do).
std::string onednn_isa();

// Below this many multiply-adds per sample (model/summary.h's total_macs, in GMAC) bf16 autocast
// costs more than it saves even where the CPU computes bf16: its casts and small kernels outweigh
// the arithmetic. Measured training steps (2-core AVX-512 BF16 EPYC, batch 32): 0.042 GMAC (demo
// widths) 1.5x slower in bf16; 0.61 GMAC (paper widths, 64 px) 1.28x faster; 2.4 GMAC (the
// paper's) 1.1-2x faster. The threshold sits between the two nearest points.
inline constexpr double kBf16MinGmacPerSample = 0.25;

// Whether a run asking for p computes in bf16 (float16 autocast on CUDA) for a model of
// gmac_per_sample. auto: bf16 on a CPU with native bf16 whose oneDNN kernels use it, for a model
// of at least kBf16MinGmacPerSample; fp32 elsewhere and on CUDA. fp32 and bf16 are taken as asked.
bool use_bf16(Precision p, const CpuFeatures& cpu, const torch::Device& device, double gmac_per_sample);
// "bf16 (auto: the CPU has avx512_bf16)" and the like: the choice and why, for run logs.
std::string precision_choice(Precision p, const CpuFeatures& cpu, const torch::Device& device, double gmac_per_sample);

}  // namespace drifa
