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
  bool native_bf16() const { return avx512_bf16 || amx_bf16; }
};

// The flags of a /proc/cpuinfo text (the first processor's); an empty text gives no features.
CpuFeatures parse_cpuinfo(const std::string& text);
// This machine's, read once.
const CpuFeatures& cpu_features();
// "AMD EPYC 9B14: avx2 avx512f avx512_bf16 (native bf16)", for logs, `drifa info` and benchmarks.
std::string isa_summary(const CpuFeatures& cpu);

// Whether a run asking for p computes in bf16 (float16 autocast on CUDA). auto: bf16 on a CPU
// with native bf16, fp32 on other CPUs and on CUDA; fp32 and bf16 are taken as asked.
bool use_bf16(Precision p, const CpuFeatures& cpu, const torch::Device& device);
// "bf16 (auto: the CPU has avx512_bf16)" and the like: the choice and why, for run logs.
std::string precision_choice(Precision p, const CpuFeatures& cpu, const torch::Device& device);

}  // namespace drifa
