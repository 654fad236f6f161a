#pragma once
// Numeric precision and the hardware: what the processor offers (read from /proc/cpuinfo). bf16
// autocast can pay only where the CPU computes bf16 natively (AVX512_BF16 or AMX); elsewhere
// oneDNN emulates it, several times slower than fp32. Whether it pays for a given model is
// measured (training/tuning.h), not guessed from flags.
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

}  // namespace drifa
