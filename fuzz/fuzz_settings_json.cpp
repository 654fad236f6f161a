// Settings from JSON (a run's config.json, a model file's drifa.config, a checkpoint's trainer
// state): the duplicate-refusing parser, then each reader through the settings validator.
#include "drifa/io/settings.h"
#include "drifa/model/config.h"
#include "drifa/training/checkpoint.h"
#include "drifa/runs/run_config.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  return drifa::fuzz::expect_clean([&] {
    const auto j = drifa::settings::parse_json(std::string(reinterpret_cast<const char*>(data) + 1, size - 1), "fuzz.json");
    switch (data[0] % 5) {
      case 0: drifa::ModelConfig::from_json(j, "fuzz.json"); break;
      case 1: drifa::runs::TrainConfig::from_json(j, "fuzz.json"); break;
      case 2: drifa::training::TrainerState::from_json(j, "fuzz.json"); break;
      case 3: drifa::runs::RunConfig::from_json(j, "/nonexistent", "fuzz.json"); break;
      default: drifa::data::AugmentConfig::from_json(j, "fuzz.json"); break;
    }
  });
}
