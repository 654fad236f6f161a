#pragma once
// A training run folder opened again: its config, its saved split and its models, for
// evaluation, uncertainty, explanations and the report.
#include <optional>
#include <string>
#include <vector>

#include "drifa/data/loader.h"
#include "drifa/data/sources.h"
#include "drifa/inputs/partners.h"
#include "drifa/runs/model_file.h"
#include "drifa/model/drifa_net.h"
#include "drifa/runs/run_config.h"

namespace drifa::runs {

struct RunFolder {
  std::string dir;
  RunConfig cfg;
  data::PreparedData data;

  // Throws drifa::Error when dir is not a run folder (no config.json / split.json).
  static RunFolder open(const std::string& dir);
  std::string best_model() const;                                     // dir/best.safetensors
  std::vector<data::Example> examples(const std::string& part) const;  // "val" | "test"
  // Loads a model file and checks that it takes this run's modalities and classes.
  DRIFANet load_model(const std::string& path) const;
  runs::LoadedModel load_model_file(const std::string& path) const;  // the same with the file's metadata
  // Unpaired runs: the partner bank (partners.safetensors, checked against cfg); a run made
  // before banks existed gets one built from its split and saved. Paired runs: none.
  std::optional<inputs::PartnerBank> partner_bank(const ModelConfig& model) const;
};

}  // namespace drifa::runs
