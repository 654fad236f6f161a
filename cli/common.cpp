#include "common.h"

#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "drifa/error.h"
#include "drifa/io/settings.h"
#include "drifa/io/config_file.h"
#include "drifa/runtime/distributed.h"
#include "drifa/runtime/memory.h"
#include "drifa/runtime/threads.h"

namespace drifa::cli {

CLI::Validator bounded(settings::IntRange r) {
  return CLI::Validator(
      [r](std::string& s) -> std::string {
        try {
          size_t used = 0;
          const long long v = std::stoll(s, &used);
          if (used == s.size() && settings::contains(r, v)) return "";
        } catch (const std::exception&) {
        }
        return "found " + s + ", allowed " + settings::describe(r);
      },
      settings::describe(r));
}

CLI::Validator bounded(settings::RealRange r) {
  return CLI::Validator(
      [r](std::string& s) -> std::string {
        try {
          size_t used = 0;
          const double v = std::stod(s, &used);
          if (used == s.size() && settings::contains(r, v)) return "";
        } catch (const std::exception&) {
        }
        return "found " + s + ", allowed " + settings::describe(r);
      },
      settings::describe(r));
}

void add_global_flags(CLI::App& app, GlobalFlags& g) {
  app.add_option("--threads", g.threads, "intra-op CPU threads (default: DRIFA_THREADS, else all cores)")
      ->check(bounded(settings::IntRange{0, int64_t{settings::limits::kThreadsPerCore} * 1024}));
  app.add_flag("-q,--quiet", g.quiet, "no progress output");
  app.add_option("--device", g.device, "auto | cpu | cuda | cuda:N");
}

void apply_global_flags(const GlobalFlags& g) {
  pick_device(g.device);  // a bad --device is refused by every command, not only those that compute
  keep_freed_memory();
  configure_threads(g.threads);
}

void add_model_flags(CLI::App& cmd, ModelFlags& f) {
  cmd.add_option("--preset", f.preset, "paper (2 modalities, 5+7 classes) | four (4 modalities) | tiny | demo");
  cmd.add_option("--config", f.config, "TOML file with a [model] table");
  cmd.add_option("--modalities", f.modalities, "number of modalities M >= 2")->check(bounded(settings::limits::kModalities));
  cmd.add_option("--classes", f.classes, "classes per task, comma separated, e.g. 5,7");
  cmd.add_option("--widths", f.widths, "stage widths: resnet18 | resnet34 | tiny | comma list");
  cmd.add_option("--in-channels", f.in_channels, "input channels (3 = RGB)")->check(bounded(settings::limits::kInChannels));
  cmd.add_option("--image-size", f.image_size, "input size (square)")->check(bounded(settings::limits::kImageSize));
  cmd.add_option("--dropout", f.dropout, "Monte Carlo dropout probability")->check(bounded(settings::limits::kDropout));
  cmd.add_option("--attention", f.attention, "none | mfa | mifa | drifa");
}

std::vector<int64_t> parse_int_list(const std::string& s, const std::string& what) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      out.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw Error("command line: " + what + ": found '" + item + "' in '" + s + "', allowed a comma-separated list of integers");
    }
  }
  if (out.empty()) throw Error("command line: " + what + ": found an empty list, allowed a comma-separated list of integers");
  return out;
}

runs::RunConfig run_config_from(const std::string& path, const std::optional<int>& epochs) {
  auto cfg = runs::RunConfig::from_toml(path);
  nlohmann::json train = nlohmann::json::object();
  if (epochs) train["epochs"] = *epochs;
  cfg.train = runs::TrainConfig::from_json(train, "command line", cfg.train);
  return cfg;
}

std::vector<double> parse_real_list(const std::string& s, const std::string& flag, settings::RealRange r) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    double v = 0;
    try {
      size_t used = 0;
      v = std::stod(item, &used);
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw Error("command line: " + flag + ": found '" + item + "' in '" + s + "', allowed a comma-separated list of numbers");
    }
    out.push_back(settings::check_real("command line", flag, v, r));
  }
  if (out.empty()) throw Error("command line: " + flag + ": found an empty list, allowed a comma-separated list of numbers");
  return out;
}

ModelConfig model_config_from(const ModelFlags& f) {
  ModelConfig c = ModelConfig::preset(f.preset, "command line: --preset");
  if (!f.config.empty()) {
    auto j = io::read_toml(f.config);
    if (!j.is_object() || !j.contains("model")) throw Error(f.config + ": model: missing (a [model] table)");
    c = ModelConfig::from_json(j["model"], f.config, c, "model");
  }
  // The flags go through the same validator as a config file's [model] table.
  nlohmann::json flags = nlohmann::json::object();
  if (f.modalities) flags["modalities"] = *f.modalities;
  if (!f.classes.empty()) flags["classes"] = parse_int_list(f.classes, "--classes");
  if (!f.widths.empty())
    flags["widths"] = (f.widths.find(',') == std::string::npos && !std::isdigit(static_cast<unsigned char>(f.widths[0])))
                          ? nlohmann::json(f.widths)
                          : nlohmann::json(parse_int_list(f.widths, "--widths"));
  if (f.in_channels) flags["in_channels"] = *f.in_channels;
  if (f.image_size) flags["image_size"] = *f.image_size;
  if (f.dropout) flags["dropout"] = *f.dropout;
  if (!f.attention.empty()) flags["attention"] = f.attention;
  // Names must follow the counts they describe.
  if (flags.contains("modalities")) c.modality_names.clear();
  if (flags.contains("classes")) {
    c.task_names.clear();
    c.class_names.clear();
  }
  return ModelConfig::from_json(flags, "command line", c);
}

void launch_local_workers(const GlobalFlags& g, int nproc, int timeout_seconds) {
  std::vector<std::string> args;
  for (size_t i = 0; i < g.argv.size(); ++i) {
    const auto& a = g.argv[i];
    if (a == "--nproc" || a == "--threads") {
      ++i;
      continue;
    }
    if (a.rfind("--nproc=", 0) == 0 || a.rfind("--threads=", 0) == 0) continue;
    args.push_back(a);
  }
  settings::check_integer("command line", "--nproc", nproc, {1, max_threads()});
  settings::check_integer("command line", "--threads", g.threads, {0, max_threads()});
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  const int threads = g.threads > 0 ? g.threads : std::max(1, cores / nproc);
  const int rc = spawn_local_workers(nproc, args, threads, timeout_seconds);
  if (rc != 0) throw Error("data-parallel run failed: a worker exited with status " + std::to_string(rc));
}

}  // namespace drifa::cli
