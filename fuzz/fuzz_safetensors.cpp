// The safetensors reader and the model configuration in its metadata.
#include "drifa/runs/model_file.h"
#include "drifa/io/safetensors.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return drifa::fuzz::expect_clean([&] {
    const auto file = drifa::io::decode_safetensors(std::string(reinterpret_cast<const char*>(data), size), "fuzz.safetensors");
    if (file.metadata.count(drifa::runs::files::kConfigKey)) drifa::runs::read_model_config(file, "fuzz.safetensors");
  });
}
