#include "drifa/training/run_folder.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "drifa/error.h"
#include "drifa/io/config_file.h"
#include "drifa/io/model_file.h"

namespace fs = std::filesystem;

namespace drifa::training {

RunFolder RunFolder::open(const std::string& dir) {
  const auto cfg_path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(cfg_path)) throw Error(dir + ": not a training run folder (no config.json)");
  RunFolder r;
  r.dir = dir;
  r.cfg = RunConfig::from_json(io::read_json(cfg_path), dir);
  r.data = data::PreparedData::from_json(io::read_json((fs::path(dir) / "split.json").string()));
  return r;
}

std::string RunFolder::best_model() const { return (fs::path(dir) / "best.safetensors").string(); }

std::vector<data::Example> RunFolder::examples(const std::string& part) const {
  if (part != "test" && part != "val") throw Error("part must be test or val, got '" + part + "'");
  return data.eval_examples(part, cfg.seed);
}

DRIFANet RunFolder::load_model(const std::string& path) const {
  auto net = io::load_model(path).net;
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
  return net;
}

}  // namespace drifa::training
