// Settings from a TOML run config: parsing, then every table through the settings validator.
#include "drifa/io/config_file.h"
#include "drifa/model/config.h"
#include "drifa/runs/run_config.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json j;
  drifa::fuzz::expect_clean([&] { j = drifa::io::parse_toml(std::string(reinterpret_cast<const char*>(data), size), "fuzz.toml"); });
  if (!j.is_object()) return 0;
  drifa::fuzz::expect_clean([&] { drifa::runs::RunConfig::from_json(j, "/nonexistent", "fuzz.toml"); });
  if (j.contains("model")) drifa::fuzz::expect_clean([&] { drifa::ModelConfig::from_json(j["model"], "fuzz.toml"); });
  return 0;
}
