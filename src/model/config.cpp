#include "drifa/model/config.h"

#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "drifa/error.h"
#include "drifa/io/settings.h"

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

void ModelConfig::validate(const std::string& source, const std::string& prefix) const {
  namespace L = settings::limits;
  auto key = [&](const std::string& k) { return prefix.empty() ? k : prefix + "." + k; };
  auto int_in = [&](const std::string& k, int64_t v, settings::IntRange r) { settings::check_integer(source, key(k), v, r); };
  auto real_in = [&](const std::string& k, double v, settings::RealRange r) { settings::check_real(source, key(k), v, r); };
  int_in("modalities", modalities, L::kModalities);
  int_in("tasks (entries of classes)", static_cast<int64_t>(classes.size()), L::kTasks);
  for (size_t t = 0; t < classes.size(); ++t) int_in("classes[" + std::to_string(t) + "]", classes[t], L::kClasses);
  int_in("in_channels", in_channels, L::kInChannels);
  int_in("image_size", image_size, L::kImageSize);
  int_in("stages (entries of widths)", static_cast<int64_t>(widths.size()), L::kStages);
  for (size_t i = 0; i < widths.size(); ++i) int_in("widths[" + std::to_string(i) + "]", widths[i], L::kWidth);
  real_in("dropout", dropout, L::kDropout);
  real_in("bn_momentum", bn_momentum, L::kBnMomentum);
  auto fail = [&](const std::string& k, const std::string& msg) { throw Error(source + ": " + key(k) + ": " + msg); };
  auto check_names = [&](const std::string& what, const std::vector<std::string>& names) {
    std::set<std::string> seen;
    for (size_t i = 0; i < names.size(); ++i) {
      const std::string k = what + "[" + std::to_string(i) + "]";
      settings::check_name(source, key(k), names[i]);
      if (!seen.insert(names[i]).second) fail(k, "found '" + names[i] + "' twice, allowed distinct names");
    }
  };
  if (!modality_names.empty() && static_cast<int64_t>(modality_names.size()) != modalities)
    fail("modality_names", "found " + std::to_string(modality_names.size()) + " names, allowed one per modality (" +
                               std::to_string(modalities) + ")");
  check_names("modality_names", modality_names);
  if (!task_names.empty() && task_names.size() != classes.size())
    fail("task_names", "found " + std::to_string(task_names.size()) + " names, allowed one per task (" +
                           std::to_string(classes.size()) + ")");
  check_names("task_names", task_names);
  if (!class_names.empty()) {
    if (class_names.size() != classes.size())
      fail("class_names", "found " + std::to_string(class_names.size()) + " lists, allowed one per task (" +
                              std::to_string(classes.size()) + ")");
    for (size_t t = 0; t < classes.size(); ++t) {
      const std::string k = "class_names[" + std::to_string(t) + "]";
      if (!class_names[t].empty() && static_cast<int64_t>(class_names[t].size()) != classes[t])
        fail(k, "found " + std::to_string(class_names[t].size()) + " names, allowed one per class (" +
                      std::to_string(classes[t]) + ")");
      check_names(k, class_names[t]);
    }
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

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& source, const ModelConfig& base,
                                   const std::string& prefix) {
  namespace L = settings::limits;
  settings::Table t(j, source, prefix);
  ModelConfig c = base;
  c.modalities = t.integer("modalities", c.modalities, L::kModalities);
  c.classes = t.integers("classes", c.classes, L::kClasses, L::kTasks);
  c.in_channels = t.integer("in_channels", c.in_channels, L::kInChannels);
  c.image_size = t.integer("image_size", c.image_size, L::kImageSize);
  if (t.has("widths") && t.raw("widths").is_string()) c.widths = widths_preset(t.choice("widths", "", {"resnet18", "resnet34", "tiny"}));
  else c.widths = t.integers("widths", c.widths, L::kWidth, L::kStages);
  c.dropout = t.real("dropout", c.dropout, L::kDropout);
  c.bn_momentum = t.real("bn_momentum", c.bn_momentum, L::kBnMomentum);
  c.attention = parse_attention(t.choice("attention", to_string(c.attention), {"none", "mfa", "mifa", "drifa"}));
  c.modality_names = t.names("modality_names", c.modality_names, {0, L::kModalities.hi}, true);
  c.task_names = t.names("task_names", c.task_names, {0, L::kTasks.hi}, true);
  t.allow("class_names");
  if (t.has("class_names")) c.class_names = t.name_lists("class_names", {0, L::kTasks.hi}, L::kClasses);
  t.finish();
  c.validate(source, prefix);
  return c;
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& source) {
  return from_json(j, source, ModelConfig{});
}

ModelConfig ModelConfig::paper() { return ModelConfig{}; }

ModelConfig ModelConfig::four_modality() {
  ModelConfig c;
  c.modalities = 4;
  c.classes = {4, 2, 3, 2};
  return c;
}

ModelConfig ModelConfig::tiny() {
  ModelConfig c;
  c.widths = widths_preset("tiny");
  c.image_size = 32;
  return c;
}

ModelConfig ModelConfig::demo() {
  ModelConfig c;
  c.classes = {3, 3};
  c.image_size = 64;
  c.widths = {16, 16, 32, 32, 64, 64, 128, 128};
  c.dropout = 0.1;
  c.bn_momentum = 0.1;
  return c;
}

const std::vector<std::string>& ModelConfig::preset_names() {
  static const std::vector<std::string> names = {"paper", "four", "tiny", "demo"};
  return names;
}

ModelConfig ModelConfig::preset(const std::string& name, const std::string& source) {
  if (name == "paper") return paper();
  if (name == "four") return four_modality();
  if (name == "tiny") return tiny();
  if (name == "demo") return demo();
  std::string known;
  for (const auto& n : preset_names()) known += (known.empty() ? "" : " | ") + n;
  throw Error(source + ": found '" + name + "', allowed " + known);
}

}  // namespace drifa
