#include "drifa/model/config.h"

#include <sstream>

#include <nlohmann/json.hpp>

#include "drifa/error.h"

namespace drifa {

std::string to_string(Attention a) {
  switch (a) {
    case Attention::None: return "none";
    case Attention::MFA: return "mfa";
    case Attention::MIFA: return "mifa";
    case Attention::DRIFA: return "drifa";
  }
  return "?";
}

Attention parse_attention(const std::string& s) {
  if (s == "none") return Attention::None;
  if (s == "mfa") return Attention::MFA;
  if (s == "mifa") return Attention::MIFA;
  if (s == "drifa") return Attention::DRIFA;
  throw Error("attention must be one of none|mfa|mifa|drifa, got '" + s + "'");
}

std::vector<int64_t> widths_preset(const std::string& name) {
  if (name == "resnet18") return {64, 64, 128, 128, 256, 256, 512, 512};
  if (name == "resnet34")
    return {64, 64, 64, 128, 128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512, 512};
  if (name == "tiny") return {8, 8, 16, 16, 32, 32, 64, 64};
  throw Error("unknown widths preset '" + name + "' (known: resnet18, resnet34, tiny)");
}

std::string ModelConfig::modality_name(int64_t m) const {
  if (m < static_cast<int64_t>(modality_names.size())) return modality_names[m];
  return "modality" + std::to_string(m);
}

std::string ModelConfig::task_name(int64_t t) const {
  if (t < static_cast<int64_t>(task_names.size())) return task_names[t];
  return "task" + std::to_string(t);
}

std::vector<std::string> ModelConfig::task_class_names(int64_t t) const {
  std::vector<std::string> names;
  for (int64_t k = 0; k < classes.at(static_cast<size_t>(t)); ++k) names.push_back(class_name(t, k));
  return names;
}

std::string ModelConfig::class_name(int64_t t, int64_t k) const {
  if (t < static_cast<int64_t>(class_names.size()) &&
      k < static_cast<int64_t>(class_names[t].size()))
    return class_names[t][k];
  return std::to_string(k);
}

void ModelConfig::validate() const {
  auto fail = [](const std::string& msg) { throw Error("model config: " + msg); };
  if (modalities < 2) fail("modalities must be >= 2 (DRIFA fuses modalities), got " + std::to_string(modalities));
  if (modalities > 64) fail("modalities must be <= 64, got " + std::to_string(modalities));
  if (classes.empty()) fail("at least one task is needed (classes is empty)");
  for (size_t t = 0; t < classes.size(); ++t)
    if (classes[t] < 2) fail("task " + std::to_string(t) + " needs >= 2 classes, got " + std::to_string(classes[t]));
  if (in_channels < 1 || in_channels > 4) fail("in_channels must be 1..4, got " + std::to_string(in_channels));
  if (image_size < 16) fail("image_size must be >= 16, got " + std::to_string(image_size));
  if (widths.size() < 2) fail("widths needs at least 2 stages, got " + std::to_string(widths.size()));
  for (size_t i = 0; i < widths.size(); ++i)
    if (widths[i] < 1) fail("widths[" + std::to_string(i) + "] must be positive");
  if (!(dropout >= 0.0 && dropout < 1.0)) fail("dropout must be in [0, 1), got " + std::to_string(dropout));
  if (!(bn_momentum > 0.0 && bn_momentum <= 1.0)) fail("bn_momentum must be in (0, 1], got " + std::to_string(bn_momentum));
  if (!modality_names.empty() && static_cast<int64_t>(modality_names.size()) != modalities)
    fail("modality_names has " + std::to_string(modality_names.size()) + " names for " +
         std::to_string(modalities) + " modalities");
  if (!task_names.empty() && task_names.size() != classes.size())
    fail("task_names has " + std::to_string(task_names.size()) + " names for " +
         std::to_string(classes.size()) + " tasks");
  if (!class_names.empty()) {
    if (class_names.size() != classes.size()) fail("class_names must list one set per task");
    for (size_t t = 0; t < classes.size(); ++t)
      if (!class_names[t].empty() && static_cast<int64_t>(class_names[t].size()) != classes[t])
        fail("class_names for task " + std::to_string(t) + " has " + std::to_string(class_names[t].size()) +
             " names for " + std::to_string(classes[t]) + " classes");
  }
}

nlohmann::json ModelConfig::to_json() const {
  return nlohmann::json{{"modalities", modalities},
                        {"classes", classes},
                        {"in_channels", in_channels},
                        {"image_size", image_size},
                        {"widths", widths},
                        {"dropout", dropout},
                        {"bn_momentum", bn_momentum},
                        {"attention", to_string(attention)},
                        {"modality_names", modality_names},
                        {"task_names", task_names},
                        {"class_names", class_names}};
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw Error("model config: expected a JSON object");
  static const char* known[] = {"modalities", "classes", "in_channels", "image_size", "widths", "dropout",
                                "bn_momentum", "attention", "modality_names", "task_names", "class_names"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const char* k : known) ok = ok || it.key() == k;
    if (!ok) throw Error("model config: unknown key '" + it.key() + "'");
  }
  ModelConfig c;
  try {
    if (j.contains("modalities")) c.modalities = j.at("modalities").get<int64_t>();
    if (j.contains("classes")) c.classes = j.at("classes").get<std::vector<int64_t>>();
    if (j.contains("in_channels")) c.in_channels = j.at("in_channels").get<int64_t>();
    if (j.contains("image_size")) c.image_size = j.at("image_size").get<int64_t>();
    if (j.contains("widths")) c.widths = j.at("widths").get<std::vector<int64_t>>();
    if (j.contains("dropout")) c.dropout = j.at("dropout").get<double>();
    if (j.contains("bn_momentum")) c.bn_momentum = j.at("bn_momentum").get<double>();
    if (j.contains("attention")) c.attention = parse_attention(j.at("attention").get<std::string>());
    if (j.contains("modality_names")) c.modality_names = j.at("modality_names").get<std::vector<std::string>>();
    if (j.contains("task_names")) c.task_names = j.at("task_names").get<std::vector<std::string>>();
    if (j.contains("class_names"))
      c.class_names = j.at("class_names").get<std::vector<std::vector<std::string>>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("model config: wrong type: ") + e.what());
  }
  c.validate();
  return c;
}

ModelConfig ModelConfig::paper() { return ModelConfig{}; }

ModelConfig ModelConfig::four_modality() {
  ModelConfig c;
  c.modalities = 4;
  c.classes = {4, 2, 3, 2};
  return c;
}

}  // namespace drifa
