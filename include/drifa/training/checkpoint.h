#pragma once
// The resumable state of a training run in one safetensors file (written atomically): the model
// under "model.<canonical name>", Adam's state as a serialized byte tensor "optimizer", and the
// trainer's counters as JSON metadata.
#include <string>

#include <nlohmann/json.hpp>
#include <torch/optim/adam.h>

#include "drifa/model/drifa_net.h"

namespace drifa::training {

struct TrainerState {
  int64_t epoch = 0;  // epochs completed
  double best_val_loss = 1e300;
  int64_t best_epoch = 0;
  double lr = 1e-3;
  double plateau_best = 1e300;
  int plateau_wait = 0, early_wait = 0;
  nlohmann::json to_json() const;
  static TrainerState from_json(const nlohmann::json& j, const std::string& source);  // validated
};

void save_checkpoint(const std::string& path, DRIFANet& net, torch::optim::Adam& opt, const TrainerState& s);
// Throws drifa::Error naming the file if it is truncated, malformed or for another model.
TrainerState load_checkpoint(const std::string& path, DRIFANet& net, torch::optim::Adam& opt);

}  // namespace drifa::training
