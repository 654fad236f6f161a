#pragma once
// Flags shared by several subcommands. The CLI stays thin: each flag maps onto a library field.
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "drifa/io/settings.h"
#include "drifa/model/config.h"
#include "drifa/runs/run_config.h"

namespace drifa::cli {

struct GlobalFlags {
  int threads = 0;  // 0 = all cores
  bool quiet = false;
  std::string device = "auto";
  std::vector<std::string> argv;  // the command line as given (for launchers that re-run it)
};
void add_global_flags(CLI::App& app, GlobalFlags& g);
// `--nproc N`: re-runs this command line without --nproc as N local ranks (torchrun's
// environment, loopback); throws drifa::Error when a worker fails.
void launch_local_workers(const GlobalFlags& g, int nproc, int timeout_seconds);
void apply_global_flags(const GlobalFlags& g);

// Model settings: a preset or a TOML config's [model] table, then individual overrides.
struct ModelFlags {
  std::string preset = "paper";  // paper | four | tiny
  std::string config;            // TOML file with a [model] table
  std::optional<int64_t> modalities, in_channels, image_size;
  std::optional<double> dropout;
  std::string classes, widths, attention;
};
void add_model_flags(CLI::App& cmd, ModelFlags& f);
ModelConfig model_config_from(const ModelFlags& f);

// A run config from its TOML file with an optional --epochs override (ensemble, cv).
runs::RunConfig run_config_from(const std::string& path, const std::optional<int>& epochs);

std::vector<int64_t> parse_int_list(const std::string& s, const std::string& what);
// "0.1,0.05" -> {0.1, 0.05}, each held to r; messages name the flag.
std::vector<double> parse_real_list(const std::string& s, const std::string& flag, settings::RealRange r);

// CLI11 checks built from the settings bounds (io/settings.h), so a flag is held to the same
// limits as the setting it mirrors: "--passes: found -5, allowed an integer from 0 to 10000".
CLI::Validator bounded(settings::IntRange r);
CLI::Validator bounded(settings::RealRange r);

}  // namespace drifa::cli
