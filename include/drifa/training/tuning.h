#pragma once
// Speed settings chosen by measuring, cuDNN-benchmark style: with precision "auto" a training
// run times the candidates on a real batch of its own before its first epoch and keeps the
// fastest. Guessing from processor flags was wrong where it mattered (bf16 chosen on an AMX
// processor and 5% slower than fp32; fused attention kernels faster at some widths and slower
// at others): only a measurement on the machine, the model and the batch says.
//
// The search starts from the plain path (fp32, NCHW, ATen attention, one-thread BLAS) and tries
// one knob at a time, keeping a change only when alternating timings (old, new, old, new, ...)
// make the step faster by more than kTuneMargin in the median of their ratios: auto is never
// slower than fp32 by more than noise.
// The result is kept in the tuning cache (runtime/tuning_cache.h) under the machine, model
// configuration, batch shape and LibTorch version, so a machine pays the timing once.
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "drifa/data/loader.h"
#include "drifa/model/config.h"
#include "drifa/runtime/precision.h"

namespace drifa::training {

// What the tuning chooses. The defaults are the plain path.
struct SpeedSettings {
  bool bf16 = false;               // bfloat16 autocast (CPU)
  bool channels_last = false;      // NHWC weights and inputs (runtime/layout.h)
  bool attention_kernels = false;  // MFA's and MIFA's fused kernels (model/attention_kernels.h)
  int blas_threads = 1;            // OpenBLAS threads per call (runtime/threads.h)
  bool mfa_chain = false;          // MFA's chain as one autograd node (model/mfa_chain.h)
  bool recompute = false;          // the attention's maps recomputed in backward (model/recompute.h)

  // "bf16, channels-last, attention kernels, BLAS x2, MFA chain, recomputed maps"; "fp32" for the plain path.
  std::string str() const;
  nlohmann::json to_json() const;
  // Throws drifa::Error naming where for a malformed object.
  static SpeedSettings from_json(const nlohmann::json& j, const std::string& where);
  bool operator==(const SpeedSettings& o) const {
    return bf16 == o.bf16 && channels_last == o.channels_last && attention_kernels == o.attention_kernels &&
           blas_threads == o.blas_threads && mfa_chain == o.mfa_chain && recompute == o.recompute;
  }
  bool operator!=(const SpeedSettings& o) const { return !(*this == o); }
};

// One knob the search may turn: its name and the settings with it turned, or the same settings
// where it does not apply there (bf16 without native bf16 kernels, the attention kernels under
// bf16 or channels-last, which they do not take).
struct Knob {
  std::string name;
  std::function<SpeedSettings(const SpeedSettings&)> turn;
  // A knob that saves memory (MFA's chain, recomputing the attention's maps) is kept unless it makes the
  // step slower by more than kMemoryKnobMargin; a speed knob only when it makes it faster by
  // more than the margin.
  bool saves_memory = false;
};

struct Timing {
  SpeedSettings settings;
  double seconds = 0;  // the best of its timed steps
  // What decided it: the median of its timings each over the best's timed next to it (the best
  // when it was tried). 0 for the plain path and a candidate dropped after one timing.
  double ratio = 0;
};

struct Tuning {
  SpeedSettings chosen;
  std::vector<Timing> timings;  // every candidate timed, the plain path first
  // "measured", "cache", or why nothing was timed ("as asked", "CUDA", "a small model").
  std::string source;
  // A table for the run log: one line per candidate, the chosen one marked.
  std::string table() const;
  nlohmann::json to_json() const;
  static Tuning from_json(const nlohmann::json& j, const std::string& where);  // throws drifa::Error
};

// A change is kept when it makes the step faster by more than this fraction.
inline constexpr double kTuneMargin = 0.05;
// Timings of each candidate, alternating with the best so far; the decision is the median of
// their ratios. One ratio per candidate (the best of two timings each, as before) let single
// steps decide, and they vary by +-15% on the 2-core Xeon: MFA's chain measured 0.96-1.04x of the
// plain path that way and 0.74-0.90x in the steady state, and was dropped on an AVX2 processor.
inline constexpr int kTuneRatios = 3;
// Untimed steps of each candidate's fresh network first: oneDNN makes its primitives and the
// allocator grows its heap over the first steps of a process (the chain's first two ratios above).
inline constexpr int kTuneWarmupSteps = 3;
// A memory knob is kept unless it makes the step slower by more than this fraction. Wider than
// kTuneMargin because the same two settings measured 0.88-1.09x of each other in alternating
// timings on the 2-core Xeon (recompute at the paper's widths, five runs: about equal on
// average), while the memory saved (37% there) is not noise.
inline constexpr double kMemoryKnobMargin = 0.10;
// A candidate whose first timing is this many times the best so far is dropped without the
// alternating rounds: no drift explains it, and a slow candidate's rounds are the tuning's
// largest cost (the fused attention kernels at the paper's widths: 12.6 s a step against 4.4).
inline constexpr double kClearlySlower = 1.5;
// Timed steps per timing: at least one, more (up to TuneOptions::steps) while they add up to
// less than this many seconds; a paper-size step (seconds) is timed once, a demo-size one twice.
inline constexpr double kMinTimedSeconds = 0.5;
// Below this many multiply-adds per training step (GMAC per sample x batch) a step takes
// milliseconds: timing noise is then as large as any gain and the run would spend longer timing
// than it could save. Such runs take the plain path, untimed (and so train alike everywhere).
inline constexpr double kTuneMinGmacPerStep = 0.5;

// The search alone, over any timer: time(settings) returns seconds per step. Knobs are tried
// in order from the plain path; one that changes nothing is skipped. A candidate is timed in
// `ratios` pairs with the best so far, in alternating order (best, alt), (alt, best), ...; one
// whose first timing is kClearlySlower than the best's before it is dropped there. A speed
// knob is kept when the median ratio is under 1 - margin, a memory knob (Knob::saves_memory)
// unless it is over 1 + memory_margin. decided(best), when given, is called after each knob's
// decision (a timer may then drop what it keeps for the loser).
Tuning search(const std::vector<Knob>& knobs, const std::function<double(const SpeedSettings&)>& time,
              double margin = kTuneMargin, const std::function<void(const SpeedSettings&)>& decided = nullptr,
              double memory_margin = kMemoryKnobMargin, int ratios = kTuneRatios);

// The middle value (the mean of the two middle ones for an even count); throws drifa::Error for none.
double median(std::vector<double> v);

// The knobs for this machine, model and device: bf16 where oneDNN's kernels compute it natively,
// channels-last, the attention kernels where the model has attention, threaded BLAS where the
// BLAS is OpenBLAS and there is more than one thread, MFA's chain as one node where the model
// has MFA (float32 only: not under bf16 or the kernels; a memory knob too: it keeps fewer maps
// for backward, 20% less peak memory at the paper's widths), and last recomputing the attention's maps
// (a memory knob: at the paper's widths 37% less peak memory, its time within noise on a 2-core
// AVX-512 Xeon) unless the process already recomputes them (set_attention_recompute). None on CUDA.
std::vector<Knob> knobs_for(const ModelConfig& mcfg, const torch::Device& device, const CpuFeatures& cpu = cpu_features());

struct TuneOptions {
  torch::Device device = torch::kCPU;
  std::string cache;  // a cache file, "none", or "" (runtime/tuning_cache.h's default)
  int steps = 2;      // at most this many timed steps per timing (kMinTimedSeconds), after kTuneWarmupSteps
  std::vector<double> task_weights;
  std::vector<torch::Tensor> class_weights;
};

// The cache key: machine_key(), the model configuration, the batch's shapes, the device.
std::string tuning_key(const ModelConfig& mcfg, const data::Batch& batch, const torch::Device& device);

// Times training steps (forward, loss, backward; Adam's step is the same under every candidate
// and left out) of fresh DRIFANet(mcfg)s on batch with
// each candidate, or reads the choice from the cache. Uses the global random generator (weights,
// dropout): a caller that needs its own sequence seeds after it.
Tuning tune_training(const ModelConfig& mcfg, const data::Batch& batch, const TuneOptions& opt);

// Puts the process-wide settings (attention kernels, BLAS threads, MFA chain, recompute) in place for its
// lifetime and restores the earlier ones after; bf16 and channels-last are the caller's (autocast,
// layout). Recompute already on in the process (drifa train --recompute-attention) stays on.
class SpeedScope {
 public:
  explicit SpeedScope(const SpeedSettings& s);
  ~SpeedScope();
  SpeedScope(const SpeedScope&) = delete;
  SpeedScope& operator=(const SpeedScope&) = delete;

 private:
  bool kernels_;
  int blas_;
  bool chain_, recompute_;
};

}  // namespace drifa::training
