#include "drifa/training/run_config.h"

#include <filesystem>

#include "drifa/data/split.h"
#include "drifa/error.h"
#include "drifa/io/config_file.h"

namespace drifa::training {

nlohmann::json TrainConfig::to_json() const {
  nlohmann::json j = {{"epochs", epochs},
          {"batch_size", batch_size},
          {"lr", lr},
          {"task_weights", task_weights},
          {"plateau_factor", plateau_factor},
          {"plateau_patience", plateau_patience},
          {"min_lr", min_lr},
          {"early_stop_patience", early_stop_patience},
          {"bf16", bf16},
          {"steps_per_epoch", steps_per_epoch}};
  if (micro_batches != 1) j["micro_batches"] = micro_batches;
  return j;
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j) {
  TrainConfig c;
  try {
    for (auto it = j.begin(); it != j.end(); ++it) {
      const auto& k = it.key();
      if (k == "epochs") c.epochs = it->get<int>();
      else if (k == "batch_size") c.batch_size = it->get<int>();
      else if (k == "lr") c.lr = it->get<double>();
      else if (k == "task_weights") c.task_weights = it->get<std::vector<double>>();
      else if (k == "plateau_factor") c.plateau_factor = it->get<double>();
      else if (k == "plateau_patience") c.plateau_patience = it->get<int>();
      else if (k == "min_lr") c.min_lr = it->get<double>();
      else if (k == "early_stop_patience") c.early_stop_patience = it->get<int>();
      else if (k == "bf16") c.bf16 = it->get<bool>();
      else if (k == "steps_per_epoch") c.steps_per_epoch = it->get<int64_t>();
      else if (k == "micro_batches") c.micro_batches = it->get<int>();
      else throw Error("[train]: unknown key '" + k + "'");
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("[train]: wrong type: ") + e.what());
  }
  if (c.epochs < 1) throw Error("[train]: epochs must be >= 1");
  if (c.micro_batches < 1) throw Error("[train]: micro_batches must be >= 1");
  if (c.batch_size < 2) throw Error("[train]: batch_size must be >= 2 (BatchNorm needs two samples)");
  if (!(c.lr > 0)) throw Error("[train]: lr must be > 0");
  if (!(c.plateau_factor > 0 && c.plateau_factor < 1)) throw Error("[train]: plateau_factor must be in (0, 1)");
  return c;
}

RunConfig RunConfig::from_json(const nlohmann::json& j, const std::string& base) {
  RunConfig r;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const auto& k = it.key();
    if (k == "seed") r.seed = it->get<uint64_t>();
    else if (k == "member") r.member = it->get<int>();
    else if (k == "model") {
      for (auto m = it->begin(); m != it->end(); ++m)
        if (m.key() != "widths" && m.key() != "dropout" && m.key() != "attention" && m.key() != "bn_momentum")
          throw Error("[model]: '" + m.key() + "' is not set here (modalities, tasks and classes come from [data]; "
                      "allowed: widths, dropout, attention, bn_momentum)");
      r.model = *it;
    } else if (k == "data") r.data = data::DataConfig::from_json(*it, base);
    else if (k == "train") r.train = TrainConfig::from_json(*it);
    else if (k == "augment") r.augment = data::AugmentConfig::from_json(*it);
    else throw Error("unknown table or key '" + k + "' (known: seed, [model], [data], [train], [augment])");
  }
  if (!j.contains("data")) throw Error("no [data] table");
  return r;
}

RunConfig RunConfig::from_toml(const std::string& path) {
  auto j = io::read_toml(path);
  try {
    return from_json(j, std::filesystem::absolute(path).parent_path().string());
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

nlohmann::json RunConfig::to_json() const {
  nlohmann::json j = {{"seed", seed}, {"model", model}, {"data", data.to_json()}, {"train", train.to_json()}, {"augment", augment.to_json()}};
  if (member != 0) j["member"] = member;
  return j;
}

uint64_t RunConfig::train_seed() const {
  return member == 0 ? seed : data::mix_seed(seed, 0xE45E, static_cast<uint64_t>(member));
}

ModelConfig RunConfig::model_config(const data::PreparedData& d) const {
  ModelConfig c;
  c.modalities = static_cast<int64_t>(d.modalities.size());
  c.classes.clear();
  for (const auto& k : d.classes) c.classes.push_back(static_cast<int64_t>(k.size()));
  c.in_channels = data.channels;
  c.image_size = data.image_size;
  c.modality_names = d.modalities;
  c.task_names = d.tasks;
  c.class_names = d.classes;
  try {
    if (model.contains("widths")) {
      if (model["widths"].is_string()) c.widths = widths_preset(model["widths"].get<std::string>());
      else c.widths = model["widths"].get<std::vector<int64_t>>();
    }
    if (model.contains("dropout")) c.dropout = model["dropout"].get<double>();
    if (model.contains("bn_momentum")) c.bn_momentum = model["bn_momentum"].get<double>();
    if (model.contains("attention")) c.attention = parse_attention(model["attention"].get<std::string>());
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("[model]: wrong type: ") + e.what());
  }
  if (!train.task_weights.empty() && train.task_weights.size() != d.tasks.size())
    throw Error("[train]: task_weights has " + std::to_string(train.task_weights.size()) + " entries for " +
                std::to_string(d.tasks.size()) + " tasks");
  c.validate();
  return c;
}

}  // namespace drifa::training
