#include "drifa/training/tuning.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include <torch/torch.h>

#include "drifa/error.h"
#include "drifa/evaluation/bootstrap.h"
#include "drifa/evaluation/evaluator.h"
#include "drifa/model/attention_kernels.h"
#include "drifa/model/drifa_net.h"
#include "drifa/model/mfa_chain.h"
#include "drifa/model/recompute.h"
#include "drifa/runtime/autocast.h"
#include "drifa/runtime/layout.h"
#include "drifa/runtime/precision.h"
#include "drifa/runtime/threads.h"
#include "drifa/runtime/tuning_cache.h"

namespace drifa::training {

namespace {
// The JSON keys of SpeedSettings and Tuning (a cache entry, the run folder's tuning.json).
constexpr const char* kBf16 = "bf16";
constexpr const char* kChannelsLast = "channels_last";
constexpr const char* kAttentionKernels = "attention_kernels";
constexpr const char* kBlasThreads = "blas_threads";
constexpr const char* kRecompute = "attention_recompute";
constexpr const char* kMfaChain = "mfa_chain";
constexpr const char* kChosen = "chosen";
constexpr const char* kTimings = "timings";
constexpr const char* kSeconds = "seconds";
constexpr const char* kRatio = "ratio";
constexpr const char* kSettings = "settings";
}  // namespace

std::string SpeedSettings::str() const {
  std::string s = bf16 ? "bf16" : "fp32";
  if (channels_last) s += ", channels-last";
  if (attention_kernels) s += ", attention kernels";
  if (blas_threads != 1) s += ", BLAS x" + std::to_string(blas_threads);
  if (mfa_chain) s += ", MFA chain";
  if (recompute) s += ", recomputed maps";
  return s;
}

nlohmann::json SpeedSettings::to_json() const {
  return {{kBf16, bf16}, {kChannelsLast, channels_last}, {kAttentionKernels, attention_kernels}, {kBlasThreads, blas_threads}, {kMfaChain, mfa_chain}, {kRecompute, recompute}};
}

SpeedSettings SpeedSettings::from_json(const nlohmann::json& j, const std::string& where) {
  const auto bad = [&](const std::string& what) { return Error(where + ": " + what); };
  if (!j.is_object()) throw bad("speed settings: found " + j.dump() + ", allowed an object");
  SpeedSettings s;
  for (auto [key, flag] : {std::pair<const char*, bool*>{kBf16, &s.bf16}, {kChannelsLast, &s.channels_last},
                           {kAttentionKernels, &s.attention_kernels}}) {
    if (!j.contains(key) || !j[key].is_boolean()) throw bad(std::string(key) + ": missing or not true/false");
    *flag = j[key].get<bool>();
  }
  if (!j.contains(kBlasThreads) || !j[kBlasThreads].is_number_integer() || j[kBlasThreads].get<int>() < 1)
    throw bad(std::string(kBlasThreads) + ": missing or not a positive integer");
  s.blas_threads = j[kBlasThreads].get<int>();
  // Absent in the tuning.json of runs made before these were knobs: those were off.
  for (auto [key, flag] : {std::pair<const char*, bool*>{kMfaChain, &s.mfa_chain}, {kRecompute, &s.recompute}}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_boolean()) throw bad(std::string(key) + ": not true/false");
    *flag = j[key].get<bool>();
  }
  return s;
}

std::string Tuning::table() const {
  std::ostringstream o;
  o << "speed settings (" << source << "):";
  const double plain = timings.empty() ? 0 : timings.front().seconds;
  for (const auto& t : timings) {
    o << "\n  " << std::left << std::setw(44) << t.settings.str() << std::right << std::fixed << std::setprecision(1) << std::setw(9)
      << 1e3 * t.seconds << " ms/step";
    if (plain > 0) o << std::setprecision(2) << std::setw(7) << plain / t.seconds << "x";
    if (t.ratio > 0) o << std::setprecision(2) << "  (median " << t.ratio << " of the best then)";
    if (t.settings == chosen) o << "  <- chosen";
  }
  if (timings.empty()) o << " " << chosen.str();
  return o.str();
}

nlohmann::json Tuning::to_json() const {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& t : timings) {
    nlohmann::json r{{kSettings, t.settings.to_json()}, {kSeconds, t.seconds}};
    if (t.ratio > 0) r[kRatio] = t.ratio;
    rows.push_back(r);
  }
  return {{kChosen, chosen.to_json()}, {kTimings, rows}};
}

Tuning Tuning::from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object() || !j.contains(kChosen) || !j.contains(kTimings) || !j[kTimings].is_array())
    throw Error(where + ": a tuning needs \"" + kChosen + "\" and a \"" + kTimings + "\" array");
  Tuning t;
  t.chosen = SpeedSettings::from_json(j[kChosen], where + ": " + kChosen);
  for (const auto& r : j[kTimings]) {
    if (!r.is_object() || !r.contains(kSeconds) || !r[kSeconds].is_number() || !r.contains(kSettings))
      throw Error(where + ": " + kTimings + ": each row needs \"" + kSettings + "\" and a number \"" + kSeconds + "\"");
    Timing row{SpeedSettings::from_json(r[kSettings], where + ": " + kTimings), r[kSeconds].get<double>()};
    // absent for the plain path, a candidate dropped after one timing, and entries of older runs
    if (r.contains(kRatio)) {
      if (!r[kRatio].is_number() || !std::isfinite(r[kRatio].get<double>()) || r[kRatio].get<double>() <= 0)
        throw Error(where + ": " + kTimings + ": \"" + kRatio + "\" must be a positive finite number, found " + r[kRatio].dump());
      row.ratio = r[kRatio].get<double>();
    }
    t.timings.push_back(row);
  }
  return t;
}

double median(std::vector<double> v) {
  if (v.empty()) throw Error("median of no values");
  std::sort(v.begin(), v.end());
  return evaluation::quantile_sorted(v, 0.5);
}

Tuning search(const std::vector<Knob>& knobs, const std::function<double(const SpeedSettings&)>& time, double margin,
              const std::function<void(const SpeedSettings&)>& decided, double memory_margin, int ratios) {
  Tuning t;
  t.source = "measured";
  const auto row = [&](const SpeedSettings& s) -> Timing& {
    auto r = std::find_if(t.timings.begin(), t.timings.end(), [&](const Timing& x) { return x.settings == s; });
    if (r != t.timings.end()) return *r;
    t.timings.push_back({s, 1e300});
    return t.timings.back();
  };
  SpeedSettings last;  // what the latest timing timed, and its seconds
  double last_s = 0;
  // Each candidate's row keeps the best of its timings.
  const auto timed = [&](const SpeedSettings& s) {
    const double sec = time(s);
    Timing& r = row(s);
    r.seconds = std::min(r.seconds, sec);
    last = s;
    last_s = sec;
    return sec;
  };
  SpeedSettings best;
  timed(best);
  for (const auto& k : knobs) {
    const SpeedSettings alt = k.turn(best);
    if (alt == best) continue;
    // Pairs in alternating order (best, alt), (alt, best), (best, alt), ...: adjacent timings, so
    // the machine's drift (up to 20% over minutes on the 2-core Xeon) moves both alike and its
    // trend cancels across pairs; the median of the pairs' ratios, so one outlying step (+-15%
    // there) decides nothing. The first pair reuses the best's latest timing when it was the last one.
    std::vector<double> r;
    for (int i = 0; i < std::max(1, ratios); ++i) {
      double b = 0, a = 0;
      if (i % 2 == 0) {
        b = i == 0 && last == best ? last_s : timed(best);
        a = timed(alt);
        if (i == 0 && a > b * kClearlySlower) break;  // dropped after this one timing
      } else {
        a = timed(alt);
        b = timed(best);
      }
      r.push_back(a / b);
    }
    if (!r.empty()) {
      const double m = median(r);
      row(alt).ratio = m;
      if (k.saves_memory ? m <= 1.0 + memory_margin : m < 1.0 - margin) best = alt;
    }
    if (decided) decided(best);
  }
  t.chosen = best;
  return t;
}

std::vector<Knob> knobs_for(const ModelConfig& mcfg, const torch::Device& device, const CpuFeatures& cpu) {
  std::vector<Knob> k;
  if (device.is_cuda()) return k;
  if (cpu.bf16_kernels())
    k.push_back({"bf16", [](SpeedSettings s) { return s.bf16 = true, s; }});
  k.push_back({"channels-last", [](SpeedSettings s) { return s.channels_last = true, s; }});
  if (has_mfa(mcfg.attention) || has_mifa(mcfg.attention))
    k.push_back({"attention kernels", [](SpeedSettings s) {
                   // The kernels take float32 NCHW only (kernels_apply); elsewhere they change nothing.
                   if (!s.bf16 && !s.channels_last) s.attention_kernels = true;
                   return s;
                 }});
  if (blas_threads() > 0 && at::get_num_threads() > 1)
    k.push_back({"threaded BLAS", [](SpeedSettings s) { return s.blas_threads = at::get_num_threads(), s; }});
  if (has_mfa(mcfg.attention))
    k.push_back({"MFA chain",
                 [](SpeedSettings s) {
                   // float32 only (mfa_chain_applies); the kernels replace the chain altogether
                   if (!s.bf16 && !s.attention_kernels) s.mfa_chain = true;
                   return s;
                 },
                 // It keeps fewer maps for backward (peak 3.35 GB against 4.2 at the paper's widths),
                 // and its speed gain (0.92x in auto's own pairs on the AVX2 stand-in) is near the margin.
                 /*saves_memory=*/true});
  if ((has_mfa(mcfg.attention) || has_mifa(mcfg.attention)) && !attention_recompute())
    k.push_back({"recomputed maps",
                 [](SpeedSettings s) {
                   // The attention kernels recompute their chain sample by sample already (attention_kernels.h).
                   if (!s.attention_kernels) s.recompute = true;
                   return s;
                 },
                 /*saves_memory=*/true});
  return k;
}

std::string tuning_key(const ModelConfig& mcfg, const data::Batch& batch, const torch::Device& device) {
  std::ostringstream o;
  // "search 4": entries from before the median-of-ratios search (a noisier decision) are not read.
  o << machine_key() << " | search 4 | " << device.str() << " | batch";
  for (const auto& x : batch.inputs) o << " " << x.sizes();
  o << " | " << mcfg.to_json().dump();
  return o.str();
}

SpeedScope::SpeedScope(const SpeedSettings& s)
    : kernels_(attention_kernels()), blas_(blas_threads()), chain_(mfa_chain()), recompute_(attention_recompute()) {
  set_attention_kernels(s.attention_kernels);
  set_mfa_chain(s.mfa_chain);
  set_attention_recompute(recompute_ || s.recompute);
  if (blas_ > 0) set_blas_threads(std::min(s.blas_threads, max_threads()));
}

SpeedScope::~SpeedScope() {
  set_attention_kernels(kernels_);
  set_mfa_chain(chain_);
  set_attention_recompute(recompute_);
  if (blas_ > 0) set_blas_threads(blas_);
}

namespace {

// A network under one candidate's settings. No optimiser: Adam's step costs the same under every
// candidate (FusedAdam takes channels-last weights in one pass too, optim/fused_adam.h), and its
// moments would double what each trial holds (a paper-size trial with them: ~0.9 GB; the first
// auto run's peak was 5335 MB against 3831 MB for the same run reading its choice from the cache).
struct Trial {
  Trial(const ModelConfig& mcfg, const SpeedSettings& s, const torch::Device& device) : net(mcfg) {
    net->to(device);
    if (s.channels_last) use_channels_last(*net);
    net->set_mode(Mode::Train);
  }
  DRIFANet net;
};

double one_step(Trial& t, const SpeedSettings& s, const std::vector<torch::Tensor>& xs, const data::Batch& batch,
                const TuneOptions& opt) {
  SpeedScope scope(s);
  const auto t0 = std::chrono::steady_clock::now();
  torch::Tensor loss;
  {
    AutocastGuard ac(s.bf16, opt.device);
    const auto r = t.net->forward(xs);
    loss = evaluation::multitask_loss(r.logits, batch.labels, opt.task_weights, opt.class_weights);
  }
  loss.backward();
  (void)loss.item<double>();  // waits for the device
  const auto sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t.net->zero_grad(/*set_to_none=*/true);  // a trial between its timings holds its weights only
  return sec;
}

}  // namespace

Tuning tune_training(const ModelConfig& mcfg, const data::Batch& batch, const TuneOptions& opt) {
  const TuningCache cache(opt.cache);
  const std::string key = tuning_key(mcfg, batch, opt.device);
  if (const auto hit = cache.get(key)) {
    try {
      auto t = Tuning::from_json(*hit, cache.path());
      t.source = "cache " + cache.path();
      return t;
    } catch (const Error& e) {
      std::cerr << "warning: " << e.what() << "; measuring again\n";
    }
  }
  std::vector<torch::Tensor> plain, nhwc;
  for (const auto& x : batch.inputs) {
    plain.push_back(x.to(opt.device));
    nhwc.push_back(to_channels_last(plain.back()));
  }
  std::vector<std::pair<SpeedSettings, std::unique_ptr<Trial>>> trials;
  const auto time = [&](const SpeedSettings& s) {
    auto it = std::find_if(trials.begin(), trials.end(), [&](const auto& p) { return p.first == s; });
    const auto& xs = s.channels_last ? nhwc : plain;
    if (it == trials.end()) {
      trials.emplace_back(s, std::make_unique<Trial>(mcfg, s, opt.device));
      it = trials.end() - 1;
      // oneDNN's primitives, the allocator: a fresh process grows its heap over the first steps
      for (int i = 0; i < kTuneWarmupSteps; ++i) one_step(*it->second, s, xs, batch, opt);
    }
    double best = 1e300, total = 0;
    for (int i = 0; i < std::max(1, opt.steps) && (i == 0 || total < kMinTimedSeconds); ++i) {
      const double sec = one_step(*it->second, s, xs, batch, opt);
      best = std::min(best, sec);
      total += sec;
    }
    return best;
  };
  // Only the current best's network is kept between knobs (a paper-size trial holds 0.2 GB of weights between timings).
  const auto decided = [&](const SpeedSettings& best) {
    trials.erase(std::remove_if(trials.begin(), trials.end(), [&](const auto& p) { return p.first != best; }), trials.end());
  };
  Tuning t = search(knobs_for(mcfg, opt.device), time, kTuneMargin, decided);
  // The first measurement kept for the key wins (tuning_cache.h): a run measuring at the same time
  // as another takes the other's choice where that was written first.
  const auto kept = cache.put(key, t.to_json());
  if (kept != t.to_json()) {
    t = Tuning::from_json(kept, cache.path());
    t.source = "cache " + cache.path() + ", written while this run measured";
  }
  return t;
}

}  // namespace drifa::training
