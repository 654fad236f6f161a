// drifa_bench: times a training step and an inference pass of DRIFA-Net (C++).
// Prints one JSON line per measurement so bench/run_bench.py can put it beside the PyTorch peer.
#include <algorithm>
#include <chrono>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "drifa/io/model_file.h"
#include "drifa/model/drifa_net.h"
#include "drifa/model/summary.h"
#include "drifa/runtime/threads.h"
#ifndef DRIFA_CORE_ONLY
#include "drifa/data/sources.h"
#include "drifa/training/run_config.h"
#endif

using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  CLI::App app{"DRIFA-Net benchmark (C++ side)"};
  std::string preset = "paper", what = "train";
  int batch = 32, steps = 5, warmup = 1, threads = 0, size = 128;
  app.add_option("--preset", preset, "paper | four | tiny");
  app.add_option("--what", what, "train | infer | loader");
  std::string config;
  app.add_option("--config", config, "with --what loader: a run config whose training data is read");
  app.add_option("--batch", batch);
  app.add_option("--steps", steps, "timed repetitions");
  app.add_option("--warmup", warmup);
  app.add_option("--threads", threads, "0 = all cores");
  app.add_option("--image-size", size);
  std::string device = "cpu";
  bool check_cpu = false;
  app.add_option("--device", device, "cpu | cuda | cuda:N");
  app.add_flag("--check-against-cpu", check_cpu, "compare the device's eval-mode logits with the CPU's and exit");
  CLI11_PARSE(app, argc, argv);

  drifa::configure_threads(threads);
#ifndef DRIFA_CORE_ONLY
  if (what == "loader") {
    // The data path alone: one epoch of augmented training batches from the warm cache.
    auto rc = drifa::training::RunConfig::from_toml(config);
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
  drifa::ModelConfig cfg = preset == "four" ? drifa::ModelConfig::four_modality() : drifa::ModelConfig::paper();
  if (preset == "tiny") cfg.widths = drifa::widths_preset("tiny");
  cfg.image_size = size;
  torch::manual_seed(0);
  const torch::Device dev = drifa::pick_device(device);
  drifa::DRIFANet net(cfg);
  std::vector<torch::Tensor> xs;
  for (int64_t m = 0; m < cfg.modalities; ++m) xs.push_back(torch::rand({batch, 3, size, size}));
  std::vector<torch::Tensor> ys;
  for (auto k : cfg.classes) ys.push_back(torch::randint(k, {batch}, torch::kLong));
  if (check_cpu) {
    // The same weights and inputs on CPU and on the device, evaluation mode.
    torch::NoGradGuard ng;
    net->set_mode(drifa::Mode::Eval);
    auto ref = net->forward(xs);
    net->to(dev);
    std::vector<torch::Tensor> dx;
    for (auto& x : xs) dx.push_back(x.to(dev));
    auto got = net->forward(dx);
    double worst = 0, scale = 0;
    for (size_t t = 0; t < ref.logits.size(); ++t) {
      worst = std::max(worst, (got.logits[t].cpu() - ref.logits[t]).abs().max().item<double>());
      scale = std::max(scale, ref.logits[t].abs().max().item<double>());
    }
    nlohmann::json j{{"check", "device-vs-cpu"}, {"device", device}, {"preset", preset}, {"batch", batch},
                     {"max_abs_diff", worst}, {"max_abs_logit", scale}};
    std::cout << j.dump() << std::endl;
    return worst <= 1e-3 * std::max(1.0, scale) ? 0 : 1;
  }
  net->to(dev);
  for (auto& x : xs) x = x.to(dev);
  for (auto& y : ys) y = y.to(dev);
  auto sync = [&] {
    if (dev.is_cuda()) torch::cuda::synchronize();
  };
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-3));

  auto once = [&] {
    if (what == "train") {
      net->set_mode(drifa::Mode::Train);
      opt.zero_grad();
      auto r = net->forward(xs);
      torch::Tensor loss = torch::zeros({}, xs[0].options());
      for (size_t t = 0; t < ys.size(); ++t) loss = loss + torch::cross_entropy_loss(r.logits[t], ys[t]) / double(ys.size());
      loss.backward();
      opt.step();
    } else {
      torch::InferenceMode guard;
      net->set_mode(drifa::Mode::Eval);
      net->forward(xs);
    }
  };
  for (int i = 0; i < warmup; ++i) once();
  sync();
  std::vector<double> secs;
  for (int i = 0; i < steps; ++i) {
    auto t0 = Clock::now();
    once();
    sync();
    secs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(secs.begin(), secs.end());
  const double median = secs[secs.size() / 2];
  const auto s = drifa::summarize(cfg);
  // FLOPs: 2 per MAC; a training step is forward + backward ~ 3 forward passes.
  const double flops = 2.0 * s.total_macs * batch * (what == "train" ? 3.0 : 1.0);
  nlohmann::json j{{"side", "drifa-c++"}, {"preset", preset}, {"what", what}, {"batch", batch},
                   {"threads", at::get_num_threads()}, {"device", device}, {"median_s", median}, {"min_s", secs.front()},
                   {"gflops", flops / median / 1e9}, {"steps", steps}};
  std::cout << j.dump() << std::endl;
}
