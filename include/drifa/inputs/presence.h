#pragma once
// Which modalities a case has. Paired data: a patient may lack one of the scans; the network
// then runs with that modality absent (drifa_net.h: skipped branch, MIFA over the present
// ones, zeros to the head). Training learns to cope with modality dropout.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

#include "drifa/model/config.h"

namespace drifa::inputs {

// A missing pattern: absent[m] is true when modality m is absent (for every case).
using Absent = std::vector<bool>;

// Names ("a", "b" or "a,b") to a pattern. Throws drifa::Error naming `source` for an unknown
// name or when nothing would be left.
Absent parse_absent(const std::vector<std::string>& names, const ModelConfig& cfg, const std::string& source);

// Every pattern with at least one modality present: the full one first, then by number absent.
std::vector<Absent> missing_patterns(int64_t modalities);

// "none" or the absent names joined by "+".
std::string pattern_name(const Absent& absent, const ModelConfig& cfg);
// {"present": [names], "absent": [names]}
nlohmann::json pattern_json(const Absent& absent, const ModelConfig& cfg);

// The inputs with the absent modalities as undefined tensors.
std::vector<torch::Tensor> drop_absent(std::vector<torch::Tensor> x, const Absent& absent);

// Modality dropout ([train] modality_dropout = q): a [B, M] float mask of 0/1 where each entry is
// 0 with probability q, drawn from `seed`. A row that would lose every modality keeps one, chosen
// uniformly from the same draws, so no sample is left without input.
torch::Tensor modality_dropout_mask(int64_t batch, int64_t modalities, double q, uint64_t seed);

}  // namespace drifa::inputs
