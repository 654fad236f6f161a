#include "drifa/runs/run_config.h"

#include <algorithm>
#include <filesystem>

#include "drifa/data/split.h"
#include "drifa/error.h"
#include "drifa/io/config_file.h"
#include "drifa/io/settings.h"

namespace drifa::runs {

nlohmann::json TrainConfig::to_json() const {
  nlohmann::json j = {{"epochs", epochs},
          {"batch_size", batch_size},
          {"lr", lr},
          {"task_weights", task_weights},
          {"plateau_factor", plateau_factor},
          {"plateau_patience", plateau_patience},
          {"min_lr", min_lr},
          {"early_stop_patience", early_stop_patience},
          {"bf16", precision == "bf16"},
          {"steps_per_epoch", steps_per_epoch}};
  if (micro_batches != 1) j["micro_batches"] = micro_batches;
  // Written only when set, so the config.json of runs made before these settings still matches.
  if (class_weights == "balanced") j["class_weights"] = "balanced";
  if (class_weights == "given") j["class_weights"] = class_weight_lists;
  if (sampling != "natural") j["sampling"] = sampling;
  if (modality_dropout > 0) j["modality_dropout"] = modality_dropout;
  if (precision == "auto") j["precision"] = "auto";
  return j;
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j, const std::string& source, const TrainConfig& base) {
  namespace L = settings::limits;
  settings::Table t(j, source, "train");
  TrainConfig c = base;
  c.epochs = static_cast<int>(t.integer("epochs", c.epochs, L::kEpochs));
  c.batch_size = static_cast<int>(t.integer("batch_size", c.batch_size, L::kBatchSize));
  c.lr = t.real("lr", c.lr, L::kLearningRate);
  c.task_weights = t.reals("task_weights", c.task_weights, L::kTaskWeight, {0, L::kTasks.hi});
  c.plateau_factor = t.real("plateau_factor", c.plateau_factor, L::kPlateauFactor);
  c.plateau_patience = static_cast<int>(t.integer("plateau_patience", c.plateau_patience, L::kPatience));
  c.min_lr = t.real("min_lr", c.min_lr, L::kMinLr);
  c.early_stop_patience = static_cast<int>(t.integer("early_stop_patience", c.early_stop_patience, L::kPatience));
  // The older key: bf16 = true is "bf16", bf16 = false alone is "fp32" (what every run's config.json
  // said before precision existed, and what it still says for fp32 runs, so they read back fp32).
  const bool legacy_bf16 = t.boolean("bf16", c.precision == "bf16");
  const std::string legacy = legacy_bf16 ? "bf16" : t.has("bf16") ? "fp32" : c.precision;
  c.precision = t.choice("precision", legacy, {"auto", "fp32", "bf16"});
  if (t.has("bf16") && t.has("precision") && legacy_bf16 != (c.precision == "bf16"))
    t.fail("bf16", "found " + settings::show(t.raw("bf16")) + " beside precision = \"" + c.precision +
                       "\", allowed one of the two (precision is the newer key)");
  c.steps_per_epoch = t.integer("steps_per_epoch", c.steps_per_epoch, L::kStepsPerEpoch);
  c.micro_batches = static_cast<int>(t.integer("micro_batches", c.micro_batches, L::kMicroBatches));
  if (t.has("class_weights")) {
    const auto& v = t.raw("class_weights");
    if (v.is_string()) {
      c.class_weights = t.choice("class_weights", "none", {"none", "balanced"});
      c.class_weight_lists.clear();
    } else if (v.is_array()) {
      c.class_weights = "given";
      c.class_weight_lists.clear();
      for (size_t i = 0; i < v.size(); ++i) {
        const auto key = "class_weights[" + std::to_string(i) + "]";
        if (!v[i].is_array() || v[i].size() < 2)
          t.fail(key, "found " + settings::show(v[i]) + ", allowed a list of one weight per class");
        std::vector<double> w;
        for (size_t k = 0; k < v[i].size(); ++k) {
          if (!v[i][k].is_number()) t.fail(key, "found " + settings::show(v[i][k]) + ", allowed a number");
          w.push_back(settings::check_real(source, "train." + key + "[" + std::to_string(k) + "]", v[i][k].get<double>(), L::kTaskWeight));
        }
        c.class_weight_lists.push_back(w);
      }
      if (c.class_weight_lists.empty()) t.fail("class_weights", "found an empty list, allowed \"none\", \"balanced\" or one list per task");
    } else {
      t.fail("class_weights", "found " + settings::show(v) + ", allowed \"none\", \"balanced\" or one list of weights per task");
    }
  }
  c.sampling = t.choice("sampling", c.sampling, {"natural", "balanced"});
  c.modality_dropout = t.real("modality_dropout", c.modality_dropout, L::kModalityDropout);
  t.finish();
  c.validate(source);
  return c;
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j, const std::string& source) {
  return from_json(j, source, TrainConfig{});
}

void TrainConfig::validate(const std::string& source) const {
  namespace L = settings::limits;
  using settings::check_integer;
  using settings::check_real;
  check_integer(source, "train.epochs", epochs, L::kEpochs);
  check_integer(source, "train.batch_size", batch_size, L::kBatchSize);
  check_real(source, "train.lr", lr, L::kLearningRate);
  for (size_t i = 0; i < task_weights.size(); ++i)
    check_real(source, "train.task_weights[" + std::to_string(i) + "]", task_weights[i], L::kTaskWeight);
  if (!task_weights.empty() && std::all_of(task_weights.begin(), task_weights.end(), [](double w) { return w == 0; }))
    throw Error(source + ": train.task_weights: found all zeros, allowed weights with a positive sum");
  check_real(source, "train.plateau_factor", plateau_factor, L::kPlateauFactor);
  check_integer(source, "train.plateau_patience", plateau_patience, L::kPatience);
  check_real(source, "train.min_lr", min_lr, L::kMinLr);
  check_integer(source, "train.early_stop_patience", early_stop_patience, L::kPatience);
  check_integer(source, "train.steps_per_epoch", steps_per_epoch, L::kStepsPerEpoch);
  check_integer(source, "train.micro_batches", micro_batches, L::kMicroBatches);
  if (micro_batches > batch_size)
    throw Error(source + ": train.micro_batches: found " + std::to_string(micro_batches) +
                ", allowed at most batch_size (" + std::to_string(batch_size) + ")");
}

RunConfig RunConfig::from_json(const nlohmann::json& j, const std::string& base, const std::string& source) {
  namespace L = settings::limits;
  settings::Table t(j, source);
  for (const char* k : {"model", "data", "train", "augment", "evaluate", "tta"}) t.allow(k);
  RunConfig r;
  r.seed = static_cast<uint64_t>(t.integer("seed", 0, L::kSeed));
  r.member = static_cast<int>(t.integer("member", 0, L::kMember));
  if (t.has("model")) {
    auto m = t.table("model");
    // Only the network's shape is set here; modalities, tasks and classes come from [data].
    // The values are checked now, so a bad [model] fails before any data is read.
    ModelConfig probe;
    nlohmann::json sub = nlohmann::json::object();
    for (const char* k : {"widths", "dropout", "attention", "bn_momentum"}) {
      m.allow(k);
      if (m.has(k)) sub[k] = m.raw(k);
    }
    m.finish();
    ModelConfig::from_json(sub, source, probe, "model");
    r.model = sub;
  }
  r.data = data::DataConfig::from_json(t.table("data"), base);
  if (t.has("train")) r.train = TrainConfig::from_json(t.raw("train"), source);
  if (t.has("augment")) r.augment = data::AugmentConfig::from_json(t.raw("augment"), source);
  if (t.has("evaluate")) {
    auto e = t.table("evaluate");
    r.aggregate = e.choice("aggregate", r.aggregate, {"mean", "max", "none"});
    e.finish();
  }
  if (t.has("tta")) r.tta = read_tta(t.raw("tta"), source);
  t.finish();
  return r;
}

std::map<std::string, std::string> RunConfig::read_tta(const nlohmann::json& raw, const std::string& source) {
  if (!raw.is_object()) throw Error(source + ": tta: found " + settings::show(raw) + ", allowed a table of modality = transforms");
  settings::Table tt(raw, source, "tta");
  std::map<std::string, std::string> out;
  for (auto it = raw.begin(); it != raw.end(); ++it) {
    settings::check_name(source, "tta", it.key());
    out[it.key()] = tt.choice(it.key().c_str(), "hflip", {"none", "hflip", "flips", "dihedral"});
  }
  tt.finish();
  return out;
}

std::vector<std::string> RunConfig::tta_transforms(const ModelConfig& cfg) const {
  for (const auto& [name, how] : tta) {
    bool known = false;
    for (int64_t m = 0; m < cfg.modalities; ++m) known = known || cfg.modality_name(m) == name;
    if (!known) throw Error("run config: tta." + name + ": no such modality");
  }
  std::vector<std::string> out;
  for (int64_t m = 0; m < cfg.modalities; ++m) {
    const auto it = tta.find(cfg.modality_name(m));
    out.push_back(it == tta.end() ? "hflip" : it->second);
  }
  return out;
}

RunConfig RunConfig::from_toml(const std::string& path) {
  return from_json(io::read_toml(path), std::filesystem::absolute(path).parent_path().string(), path);
}

nlohmann::json RunConfig::to_json() const {
  nlohmann::json j = {{"seed", seed}, {"model", model}, {"data", data.to_json()}, {"train", train.to_json()}, {"augment", augment.to_json()}};
  if (member != 0) j["member"] = member;
  if (aggregate != "mean") j["evaluate"] = {{"aggregate", aggregate}};  // older runs' config.json stays equal
  if (!tta.empty()) j["tta"] = tta;
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
  c = ModelConfig::from_json(model, "run config", c, "model");
  if (!train.task_weights.empty() && train.task_weights.size() != d.tasks.size())
    throw Error("run config: train.task_weights: found " + std::to_string(train.task_weights.size()) +
                " weights, allowed one per task (" + std::to_string(d.tasks.size()) + ")");
  c.validate("run config");
  return c;
}

}  // namespace drifa::runs
