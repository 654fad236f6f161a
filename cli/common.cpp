#include "common.h"

#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "drifa/error.h"
#include "drifa/io/config_file.h"
#include "drifa/runtime/distributed.h"
#include "drifa/runtime/memory.h"
#include "drifa/runtime/threads.h"

namespace drifa::cli {

void add_global_flags(CLI::App& app, GlobalFlags& g) {
  app.add_option("--threads", g.threads, "intra-op CPU threads (default: all cores)");
  app.add_flag("-q,--quiet", g.quiet, "no progress output");
  app.add_option("--device", g.device, "auto | cpu | cuda | cuda:N");
}

void apply_global_flags(const GlobalFlags& g) {
  keep_freed_memory();
  configure_threads(g.threads);
}

void add_model_flags(CLI::App& cmd, ModelFlags& f) {
  cmd.add_option("--preset", f.preset, "paper (2 modalities, 5+7 classes) | four (4 modalities) | tiny");
  cmd.add_option("--config", f.config, "TOML file with a [model] table");
  cmd.add_option("--modalities", f.modalities, "number of modalities M >= 2");
  cmd.add_option("--classes", f.classes, "classes per task, comma separated, e.g. 5,7");
  cmd.add_option("--widths", f.widths, "stage widths: resnet18 | resnet34 | tiny | comma list");
  cmd.add_option("--in-channels", f.in_channels, "input channels (3 = RGB)");
  cmd.add_option("--image-size", f.image_size, "input size (square)");
  cmd.add_option("--dropout", f.dropout, "Monte Carlo dropout probability");
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
      throw Error(what + ": '" + item + "' is not an integer (in '" + s + "')");
    }
  }
  if (out.empty()) throw Error(what + ": empty list");
  return out;
}

ModelConfig model_config_from(const ModelFlags& f) {
  ModelConfig c;
  if (f.preset == "paper") {
    c = ModelConfig::paper();
  } else if (f.preset == "four") {
    c = ModelConfig::four_modality();
  } else if (f.preset == "tiny") {
    c.widths = widths_preset("tiny");
    c.image_size = 32;
  } else {
    throw Error("--preset must be paper, four or tiny, got '" + f.preset + "'");
  }
  if (!f.config.empty()) {
    auto j = io::read_toml(f.config);
    if (!j.contains("model")) throw Error(f.config + ": no [model] table");
    nlohmann::json merged = c.to_json();
    merged.update(j["model"]);
    try {
      c = ModelConfig::from_json(merged);
    } catch (const Error& e) {
      throw Error(f.config + ": " + e.what());
    }
  }
  if (f.modalities) c.modalities = *f.modalities;
  if (!f.classes.empty()) c.classes = parse_int_list(f.classes, "--classes");
  if (!f.widths.empty())
    c.widths = (f.widths.find(',') == std::string::npos && !std::isdigit(static_cast<unsigned char>(f.widths[0])))
                   ? widths_preset(f.widths)
                   : parse_int_list(f.widths, "--widths");
  if (f.in_channels) c.in_channels = *f.in_channels;
  if (f.image_size) c.image_size = *f.image_size;
  if (f.dropout) c.dropout = *f.dropout;
  if (!f.attention.empty()) c.attention = parse_attention(f.attention);
  // Names must follow the counts they describe.
  if (c.modality_names.size() != static_cast<size_t>(c.modalities)) c.modality_names.clear();
  if (c.task_names.size() != c.classes.size()) c.task_names.clear();
  if (c.class_names.size() != c.classes.size()) c.class_names.clear();
  c.validate();
  return c;
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
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  const int threads = g.threads > 0 ? g.threads : std::max(1, cores / nproc);
  const int rc = spawn_local_workers(nproc, args, threads, timeout_seconds);
  if (rc != 0) throw Error("data-parallel run failed: a worker exited with status " + std::to_string(rc));
}

}  // namespace drifa::cli
