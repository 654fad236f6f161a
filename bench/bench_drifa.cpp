// drifa_bench: times a training step and an inference pass of DRIFA-Net (C++).
// Prints one JSON line per measurement so bench/run_bench.py can put it beside the PyTorch peer.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <sstream>

#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/profiler.h>
#include <torch/torch.h>

#include "drifa/io/atomic_file.h"
#include "drifa/runs/model_file.h"
#include "drifa/model/attention_kernels.h"
#include "drifa/model/drifa_net.h"
#include "drifa/model/mfa.h"
#include "drifa/model/spatial_stats.h"
#include "drifa/model/summary.h"
#include "drifa/optim/fused_adam.h"
#include "drifa/runtime/autocast.h"
#include "drifa/runtime/layout.h"
#include "drifa/runtime/memory.h"
#include "drifa/runtime/precision.h"
#include "drifa/runtime/threads.h"
#include "drifa/inference/mc_sampler.h"
#ifndef DRIFA_CORE_ONLY
#include "drifa/data/sources.h"
#include "drifa/runs/run_config.h"
#include "drifa/training/tuning.h"
#endif

using Clock = std::chrono::steady_clock;

namespace {

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

// The demo's network (drifa synth's demo.toml): 2 modalities, 3 + 3 classes, 64 px, widths 16..128.
}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"DRIFA-Net benchmark (C++ side)"};
  std::string preset = "paper", what = "train";
  int batch = 32, steps = 5, warmup = 1, threads = 0, size = 128;
  app.add_option("--preset", preset, "paper | four | tiny | demo");
  app.add_option("--what", what, "train | infer | mc | loader | adam (the optimiser step alone)");
  bool channels_last = false, bf16 = false;
  app.add_flag("--channels-last", channels_last, "NHWC memory layout for weights and inputs");
  app.add_flag("--bf16", bf16, "bfloat16 autocast (CUDA: float16)");
  std::string precision;
  app.add_option("--precision", precision, "auto | fp32 | bf16 (auto, --what train only: the speed settings timed as drifa train does, training/tuning.h); overrides --bf16");
  std::string tuning_cache = "none";
  app.add_option("--tuning-cache", tuning_cache, "with --precision auto: a cache file, or none (the default: time every run)");
  int models = 5, passes = 30, samples = 64;
  app.add_option("--models", models, "with --what mc: ensemble size K");
  app.add_option("--passes", passes, "with --what mc: Monte Carlo passes T per model");
  app.add_option("--samples", samples, "with --what mc: test samples N");
  std::string config;
  app.add_option("--config", config, "with --what loader: a run config whose training data is read");
  app.add_option("--batch", batch);
  app.add_option("--steps", steps, "timed repetitions");
  app.add_option("--warmup", warmup);
  app.add_option("--threads", threads, "0 = all cores");
  app.add_option("--image-size", size);
  std::string attention;
  app.add_option("--attention", attention, "none | mfa | mifa | drifa (default: the preset's)");
  std::string device = "cpu";
  bool check_cpu = false;
  app.add_option("--device", device, "cpu | cuda | cuda:N");
  app.add_flag("--check-against-cpu", check_cpu, "compare the device's eval-mode logits with the CPU's and exit");
  bool default_malloc = false;
  app.add_flag("--default-malloc", default_malloc, "leave glibc's allocator as it is (every large tensor a fresh mmap)");
  bool plain_attention = false;
  app.add_flag("--plain-attention", plain_attention, "the attention arithmetic as plain ATen ops (no fused pooling kernels)");
  bool attention_kernels = false;
  bool recompute = false;
  bool chain = false;
  app.add_flag("--mfa-chain", chain, "MFA's full-resolution chain as one autograd node (model/mfa_chain.h)");
  app.add_flag("--recompute-attention", recompute, "training recomputes MFA's and MIFA's full-resolution maps in backward instead of keeping them (model/recompute.h)");
  app.add_flag("--attention-kernels", attention_kernels, "MFA's chain and MIFA's local branch as the fused kernels (model/attention_kernels.h)");
  int blas = 0;
  app.add_option("--blas-threads", blas, "OpenBLAS threads (default 1, as drifa sets them; 0 leaves that)");
  bool plain_adam = false;
  app.add_flag("--plain-adam", plain_adam, "LibTorch's Adam (about ten ATen ops per parameter) instead of drifa::FusedAdam");
  std::string profile;
  app.add_option("--profile", profile,
                 "with --what train|infer: write the timed steps' operator trace to FILE (chrome://tracing JSON; "
                 "bench/profile_summary.py tabulates it)");
  CLI11_PARSE(app, argc, argv);
  if (plain_attention) drifa::set_fused_attention(false);
  drifa::set_attention_kernels(attention_kernels);
  drifa::set_attention_recompute(recompute);
  drifa::set_mfa_chain(chain);
  const auto asked = precision.empty() ? drifa::Precision::FP32 : drifa::parse_precision(precision, "--precision");

  if (!default_malloc) drifa::keep_freed_memory();
  drifa::configure_threads(threads);
  if (blas != 0) drifa::set_blas_threads(blas);  // checks the range
#ifndef DRIFA_CORE_ONLY
  if (what == "loader") {
    // The data path alone: one epoch of augmented training batches from the warm cache.
    auto rc = drifa::runs::RunConfig::from_toml(config);
    auto d = drifa::data::prepare_data(rc.data, rc.seed);
    drifa::data::ImageCache cache(rc.data.image_options());
    std::vector<std::string> warnings;
    auto t0 = Clock::now();
    drifa::data::verify_prepared(d, cache, rc.data, warnings);
    const double decode_s = std::chrono::duration<double>(Clock::now() - t0).count();
    auto ex = d.train_examples(rc.seed, 1);
    drifa::data::LoaderOptions lo;
    lo.batch_size = rc.train.batch_size;
    lo.workers = rc.data.workers;
    lo.augment = rc.augment.enabled();
    lo.aug = rc.augment;
    std::vector<double> secs;
    for (int i = 0; i < steps; ++i) {
      lo.epoch = i + 1;
      drifa::data::BatchLoader loader(ex, cache, lo);
      drifa::data::Batch b;
      auto t1 = Clock::now();
      while (loader.next(b)) {
      }
      secs.push_back(std::chrono::duration<double>(Clock::now() - t1).count());
    }
    std::sort(secs.begin(), secs.end());
    const double med = secs[secs.size() / 2];
    nlohmann::json j{{"side", "drifa-c++"}, {"what", "loader"}, {"images", d.all_paths().size()},
                     {"first_decode_s", decode_s}, {"epoch_samples", ex.size()}, {"epoch_median_s", med},
                     {"samples_per_s", ex.size() / med}, {"workers", rc.data.workers}};
    std::cout << j.dump() << std::endl;
    return 0;
  }
#endif
  drifa::ModelConfig cfg = drifa::ModelConfig::preset(preset);
  if (preset != "demo") cfg.image_size = size;
  if (!attention.empty()) cfg.attention = drifa::parse_attention(attention);
  size = static_cast<int>(cfg.image_size);
  if (!precision.empty() && asked != drifa::Precision::Auto) bf16 = asked == drifa::Precision::BF16;
  if (asked == drifa::Precision::Auto && what != "train") {
    std::cerr << "--precision auto: only with --what train (inference takes --bf16)\n";
    return 2;
  }
  if (what == "mc") {
    // The uncertainty study: K models x T passes over N samples, as the naive loop of full forward
    // passes (fp32, default layout) and as DRIFA runs it (shared prefix, grouped passes, layout).
    const torch::Device dev = drifa::pick_device(device);
    std::vector<drifa::DRIFANet> nets;
    for (int k = 0; k < models; ++k) {
      torch::manual_seed(100 + k);
      nets.emplace_back(cfg);
      nets.back()->to(dev);
      nets.back()->set_mode(drifa::Mode::Eval);
    }
    torch::manual_seed(7);
    std::vector<torch::Tensor> data;
    for (int64_t m = 0; m < cfg.modalities; ++m) data.push_back(torch::rand({samples, cfg.in_channels, size, size}).to(dev));
    auto study = [&](bool fast) {
      std::vector<torch::Tensor> out;
      for (int k = 0; k < models; ++k) {
        if (fast && channels_last) drifa::use_channels_last(*nets[k]);
        drifa::inference::MCOptions o;
        o.passes = passes;
        o.seed = static_cast<uint64_t>(k);
        o.share_prefix = fast;
        o.bf16 = fast && bf16;
        for (int64_t b0 = 0; b0 < samples; b0 += batch) {
          const int64_t n = std::min<int64_t>(batch, samples - b0);
          std::vector<torch::Tensor> xs;
          for (auto& x : data) xs.push_back(fast && channels_last ? drifa::to_channels_last(x.narrow(0, b0, n)) : x.narrow(0, b0, n));
          std::vector<int64_t> ids;
          for (int64_t i = 0; i < n; ++i) ids.push_back(b0 + i);
          out.push_back(drifa::inference::mc_sample(nets[k], xs, ids, o)[0]);
        }
        if (fast && channels_last)
          for (auto& p : nets[k]->parameters()) p.set_data(p.contiguous());
      }
      return out;
    };
    auto t0 = Clock::now();
    const auto naive = study(false);
    const double naive_s = std::chrono::duration<double>(Clock::now() - t0).count();
    t0 = Clock::now();
    const auto fast = study(true);
    const double fast_s = std::chrono::duration<double>(Clock::now() - t0).count();
    double diff = 0;
    for (size_t i = 0; i < naive.size(); ++i) diff = std::max(diff, (naive[i] - fast[i]).abs().max().item<double>());
    nlohmann::json j{{"side", "drifa-c++"}, {"what", "mc"}, {"preset", preset}, {"models", models}, {"passes", passes},
                     {"samples", samples}, {"batch", batch}, {"threads", at::get_num_threads()}, {"device", device},
                     {"naive_s", naive_s}, {"fast_s", fast_s}, {"speedup", naive_s / fast_s},
                     {"max_abs_prob_diff", diff}, {"channels_last", channels_last}, {"bf16", bf16},
                     {"peak_rss_mb", peak_rss_mb()}};
    std::cout << j.dump() << std::endl;
    return 0;
  }
  torch::manual_seed(0);
  const torch::Device dev = drifa::pick_device(device);
  drifa::DRIFANet net(cfg);
  std::vector<torch::Tensor> xs;
  for (int64_t m = 0; m < cfg.modalities; ++m) xs.push_back(torch::rand({batch, 3, size, size}));
  std::vector<torch::Tensor> ys;
  for (auto k : cfg.classes) ys.push_back(torch::randint(k, {batch}, torch::kLong));
  nlohmann::json tuned;
  if (asked == drifa::Precision::Auto) {
#ifdef DRIFA_CORE_ONLY
    std::cerr << "--precision auto: not in a DRIFA_CORE_ONLY build (the tuning lives in training/)\n";
    return 2;
#else
    // What `drifa train` does with precision auto: time the candidates on this batch (or read
    // them from the cache), then take the chosen settings.
    drifa::training::TuneOptions to;
    to.device = drifa::pick_device(device);
    to.cache = tuning_cache;
    const auto t0 = Clock::now();
    const auto t = drifa::training::tune_training(cfg, drifa::data::Batch{xs, ys, {}}, to);
    const double tuning_s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::cerr << t.table() << "\n";
    bf16 = t.chosen.bf16;
    channels_last = channels_last || t.chosen.channels_last;
    drifa::set_attention_kernels(t.chosen.attention_kernels);
    drifa::set_attention_recompute(recompute || t.chosen.recompute);
    drifa::set_mfa_chain(chain || t.chosen.mfa_chain);
    if (drifa::blas_threads() > 0) drifa::set_blas_threads(t.chosen.blas_threads);
    tuned = t.to_json();
    for (size_t i = 0; i < t.timings.size(); ++i) tuned["timings"][i]["settings_str"] = t.timings[i].settings.str();
    tuned["source"] = t.source;
    tuned["chosen_str"] = t.chosen.str();
    tuned["tuning_s"] = tuning_s;
#endif
  }
  if (check_cpu) {
    // The same weights and inputs on CPU and on the device: evaluation-mode logits, and Monte
    // Carlo probabilities (the masks come from per-sample CPU generators, so they are the same).
    torch::NoGradGuard ng;
    net->set_mode(drifa::Mode::Eval);
    auto ref = net->forward(xs);
    drifa::inference::MCOptions mo;
    mo.passes = 4;
    std::vector<int64_t> ids;
    for (int64_t i = 0; i < batch; ++i) ids.push_back(i);
    auto mc_ref = drifa::inference::mc_sample(net, xs, ids, mo);
    net->to(dev);
    std::vector<torch::Tensor> dx;
    for (auto& x : xs) dx.push_back(x.to(dev));
    net->set_mode(drifa::Mode::Eval);
    auto got = net->forward(dx);
    auto mc_got = drifa::inference::mc_sample(net, dx, ids, mo);
    double worst = 0, scale = 0, mc_worst = 0;
    for (size_t t = 0; t < ref.logits.size(); ++t) {
      worst = std::max(worst, (got.logits[t].cpu() - ref.logits[t]).abs().max().item<double>());
      scale = std::max(scale, ref.logits[t].abs().max().item<double>());
      mc_worst = std::max(mc_worst, (mc_got[t] - mc_ref[t]).abs().max().item<double>());
    }
    nlohmann::json j{{"check", "device-vs-cpu"}, {"device", device}, {"preset", preset}, {"batch", batch},
                     {"max_abs_diff", worst}, {"max_abs_logit", scale}, {"mc_max_abs_prob_diff", mc_worst}};
    std::cout << j.dump() << std::endl;
    return worst <= 1e-3 * std::max(1.0, scale) && mc_worst <= 1e-3 ? 0 : 1;
  }
  net->to(dev);
  for (auto& x : xs) x = x.to(dev);
  for (auto& y : ys) y = y.to(dev);
  if (channels_last) {
    drifa::use_channels_last(*net);
    for (auto& x : xs) x = drifa::to_channels_last(x);
  }
  auto sync = [&] {
    if (dev.is_cuda()) torch::cuda::synchronize();
  };
  std::unique_ptr<torch::optim::Adam> opt;
  if (plain_adam)
    opt = std::make_unique<torch::optim::Adam>(net->parameters(), torch::optim::AdamOptions(1e-3));
  else
    opt = std::make_unique<drifa::FusedAdam>(net->parameters(), torch::optim::AdamOptions(1e-3));

  if (what == "adam") {
    // The optimiser step alone, on the network's parameters with fixed random gradients.
    for (auto& p : net->parameters()) p.mutable_grad() = torch::randn_like(p);
  }
  auto once = [&] {
    if (what == "adam") {
      opt->step();
    } else if (what == "train") {
      net->set_mode(drifa::Mode::Train);
      opt->zero_grad();
      torch::Tensor loss = torch::zeros({}, xs[0].options());
      {
        drifa::AutocastGuard ac(bf16, dev);
        auto r = net->forward(xs);
        for (size_t t = 0; t < ys.size(); ++t)
          loss = loss + torch::cross_entropy_loss(r.logits[t].to(torch::kFloat32), ys[t]) / double(ys.size());
      }
      loss.backward();
      opt->step();
    } else {
      torch::InferenceMode guard;
      drifa::AutocastGuard ac(bf16, dev);
      net->set_mode(drifa::Mode::Eval);
      net->forward(xs);
    }
  };
  for (int i = 0; i < warmup; ++i) once();
  sync();
  std::vector<double> secs;
  {
    // LibTorch's own operator profiler (every ATen op and autograd node, begin and end), around
    // the timed steps only; it adds a little time per op, so the medians below include it.
    // The trace is collected in memory and written whole (atomic_write), so a path that cannot be
    // written is an error and a partial trace never appears.
    std::ostringstream trace_text;
    {
      std::unique_ptr<torch::autograd::profiler::RecordProfile> trace;
      if (!profile.empty()) trace = std::make_unique<torch::autograd::profiler::RecordProfile>(trace_text);
      for (int i = 0; i < steps; ++i) {
        auto t0 = Clock::now();
        once();
        sync();
        secs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      }
    }
    if (!profile.empty()) drifa::io::atomic_write_text(profile, trace_text.str());
  }
  std::sort(secs.begin(), secs.end());
  const double median = secs[secs.size() / 2];
  const auto s = drifa::summarize(cfg);
  // FLOPs: 2 per MAC; a training step is forward + backward ~ 3 forward passes.
  const double flops = 2.0 * s.total_macs * batch * (what == "train" ? 3.0 : 1.0);
  nlohmann::json j{{"side", "drifa-c++"}, {"preset", preset}, {"what", what}, {"batch", batch},
                   {"threads", at::get_num_threads()}, {"device", device}, {"median_s", median}, {"min_s", secs.front()},
                   {"gflops", flops / median / 1e9}, {"steps", steps}, {"channels_last", channels_last},
                   {"bf16", bf16}, {"precision", precision.empty() ? (bf16 ? "bf16" : "fp32") : precision},
                   {"isa", drifa::isa_summary(drifa::cpu_features())}, {"onednn_isa", drifa::onednn_isa()}, {"attention", drifa::to_string(cfg.attention)}, {"fused_attention", drifa::fused_attention()}, {"attention_kernels", drifa::attention_kernels()}, {"attention_recompute", drifa::attention_recompute()}, {"mfa_chain", drifa::mfa_chain()}, {"keep_freed_memory", !default_malloc}, {"fused_adam", !plain_adam}, {"blas_threads", drifa::blas_threads()}, {"flops", flops}, {"peak_rss_mb", peak_rss_mb()}};
  if (!profile.empty()) j["profile"] = profile;
  if (!tuned.is_null()) j["tuning"] = tuned;
  std::cout << j.dump() << std::endl;
  return 0;
}

// Errors (a setting out of range, an output that cannot be written) end the run with their message
// and a non-zero exit, not an abort.
int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "drifa_bench: " << e.what() << std::endl;
    return 1;
  }
}
