#pragma once
// A model file is a safetensors file holding the full state (parameters and BN running stats,
// float32) under the spec's canonical names, with the ModelConfig as JSON in the metadata key
// files::kConfigKey (keys.h). It loads into the PyTorch port (bench/drifa_torch.py) with load_state_dict.
#include <string>

#include "drifa/io/safetensors.h"
#include "drifa/runs/keys.h"
#include "drifa/model/drifa_net.h"

namespace drifa::runs {

using io::Metadata;
using io::NamedTensors;
using io::SafetensorsFile;

// Canonical state: parameters and buffers, BN num_batches_tracked left out (spec section 6).
NamedTensors model_state(const torch::nn::Module& module);

// Copies tensors into the module's state. Every canonical name must be present with the same
// shape and no extra names may appear; throws drifa::Error naming source and tensor otherwise.
void load_state(torch::nn::Module& module, const NamedTensors& tensors, const std::string& source);

// A fingerprint of the canonical state's names, shapes and float32 values (16 hex digits, not a
// cryptographic hash): it tells whether two files hold the same weights, whatever their metadata
// (calibrate rewrites best.safetensors' metadata, not its weights).
std::string weights_hash(const torch::nn::Module& module);

void save_model(DRIFANet& net, const std::string& path, Metadata extra = {});
ModelConfig read_model_config(const SafetensorsFile& file, const std::string& source);

struct LoadedModel {
  DRIFANet net{nullptr};
  Metadata metadata;
};
LoadedModel load_model(const std::string& path);

}  // namespace drifa::runs
