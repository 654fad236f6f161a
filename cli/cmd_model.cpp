// drifa info | drifa init: describe a configuration or a saved model; write a fresh model.
#include <iostream>

#include <torch/torch.h>

#include "commands.h"
#include "drifa/runs/model_file.h"
#include "drifa/model/drifa_net.h"
#include "drifa/model/summary.h"
#include "drifa/runtime/precision.h"
#include "drifa/training/tuning.h"

namespace drifa::cli {

void register_info(CLI::App& app, GlobalFlags& g) {
  struct Opts {
    ModelFlags model;
    std::string file;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("info", "architecture summary, parameter count and MACs of a configuration or model file");
  add_model_flags(*cmd, o->model);
  cmd->add_option("model_file", o->file, "a saved .safetensors model (overrides the configuration flags)");
  cmd->callback([o, &g] {
    apply_global_flags(g);
    ModelConfig cfg;
    io::Metadata meta;
    DRIFANet net{nullptr};
    if (!o->file.empty()) {
      auto loaded = runs::load_model(o->file);
      net = loaded.net;
      meta = loaded.metadata;
      cfg = net->config();
      std::cout << "model file: " << o->file << "\n";
    } else {
      cfg = model_config_from(o->model);
      net = DRIFANet(cfg);
    }
    auto s = summarize(cfg);
    std::cout << format_summary(s);
    const int64_t built = count_parameters(*net);
    std::cout << "parameters of the built model: " << built << (built == s.total_params ? " (matches)" : " (MISMATCH)")
              << "\n";
    for (const auto& [k, v] : meta)
      if (k != runs::files::kConfigKey) std::cout << "metadata " << k << ": " << v << "\n";
    std::cout << "threads: " << at::get_num_threads() << "\n";
    std::cout << "processor: " << isa_summary(cpu_features()) << "\n";
    std::cout << "oneDNN kernels: " << onednn_isa() << "\n";
    std::string knobs;
    for (const auto& k : training::knobs_for(cfg, torch::kCPU)) knobs += (knobs.empty() ? "" : ", ") + k.name;
    std::cout << "precision auto on this CPU: fp32 against " << knobs << ", timed on the first batch of training where a step is at least "
              << training::kTuneMinGmacPerStep << " GMAC (here " << s.gmac() << " GMAC per sample)\n";
  });
}

void register_init(CLI::App& app, GlobalFlags& g) {
  struct Opts {
    ModelFlags model;
    std::string out;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("init", "write a freshly initialised model (Glorot-uniform) to a safetensors file");
  add_model_flags(*cmd, o->model);
  cmd->add_option("-o,--out", o->out, "output .safetensors file")->required();
  cmd->add_option("--seed", o->seed, "random seed");
  cmd->callback([o, &g] {
    apply_global_flags(g);
    torch::manual_seed(o->seed);
    DRIFANet net(model_config_from(o->model));
    runs::save_model(net, o->out, {{"drifa.seed", std::to_string(o->seed)}});
    if (!g.quiet) std::cout << "wrote " << o->out << " (" << count_parameters(*net) << " parameters)\n";
  });
}

}  // namespace drifa::cli
