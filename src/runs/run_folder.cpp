#include "drifa/runs/run_folder.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "drifa/data/split.h"
#include "drifa/error.h"
#include "drifa/io/config_file.h"
#include "drifa/runs/model_file.h"
#include "drifa/runs/files.h"

namespace fs = std::filesystem;

namespace drifa::runs {

RunFolder RunFolder::open(const std::string& dir) {
  if (!fs::is_directory(dir)) throw Error(dir + ": no such folder (a training run folder was expected)");
  const auto cfg_path = runs::files::path(dir, runs::files::kConfig);
  if (!fs::exists(cfg_path)) throw Error(dir + ": not a training run folder (no config.json)");
  RunFolder r;
  r.dir = dir;
  r.cfg = RunConfig::from_json(io::read_json(cfg_path), dir, cfg_path);
  const auto split_path = runs::files::path(dir, runs::files::kSplit);
  r.data = data::PreparedData::from_json(io::read_json(split_path), split_path);
  // The two files must describe the same data: modalities and the unpaired/paired setting.
  const size_t config_modalities = r.cfg.data.paired ? r.cfg.data.paired_spec.image_columns.size() : r.cfg.data.modalities.size();
  if (r.data.paired != r.cfg.data.paired || r.data.modalities.size() != config_modalities)
    throw Error(split_path + ": modalities: found " + std::to_string(r.data.modalities.size()) + (r.data.paired ? " paired" : " unpaired") +
                ", allowed what config.json describes (" + std::to_string(config_modalities) +
                (r.cfg.data.paired ? " paired" : " unpaired") + ")");
  return r;
}

std::string RunFolder::best_model() const { return runs::files::path(dir, runs::files::kBestModel); }

std::vector<data::Example> RunFolder::examples(const std::string& part) const {
  if (part != "test" && part != "val") throw Error("part must be test or val, got '" + part + "'");
  return data.eval_examples(part, cfg.seed);
}

DRIFANet RunFolder::load_model(const std::string& path) const { return load_model_file(path).net; }

runs::LoadedModel RunFolder::load_model_file(const std::string& path) const {
  auto loaded = runs::load_model(path);
  auto& net = loaded.net;
  const auto& mc = net->config();
  if (mc.modalities != static_cast<int64_t>(data.modalities.size()))
    throw Error(path + ": the model takes " + std::to_string(mc.modalities) + " modalities, the run's data has " +
                std::to_string(data.modalities.size()));
  for (size_t t = 0; t < data.classes.size(); ++t)
    if (t >= mc.class_names.size() || mc.class_names[t] != data.classes[t])
      throw Error(path + ": the model's classes for task " + std::to_string(t) + " differ from the run " + dir);
  if (mc.image_size != cfg.data.image_size || mc.in_channels != cfg.data.channels)
    throw Error(path + ": the model takes " + std::to_string(mc.in_channels) + "-channel " + std::to_string(mc.image_size) +
                " px images, the run " + dir + " uses " + std::to_string(cfg.data.channels) + "-channel " +
                std::to_string(cfg.data.image_size) + " px");
  return loaded;
}

std::optional<inputs::PartnerBank> RunFolder::partner_bank(const ModelConfig& model) const {
  if (data.paired) return std::nullopt;
  const auto path = runs::files::path(dir, runs::files::kPartners);
  if (!fs::exists(path)) {
    data::ImageCache cache(cfg.data.image_options());
    inputs::save_partner_bank(path, inputs::build_partner_bank(data, cache, inputs::kBankSize, data::mix_seed(cfg.seed, 0xBA)));
  }
  return inputs::load_partner_bank(path, model);
}

}  // namespace drifa::runs
