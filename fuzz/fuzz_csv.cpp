// The CSV reader (manifests, logs, the uncertainty study's samples).
#include "drifa/data/csv.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return drifa::fuzz::expect_clean([&] {
    const auto t = drifa::data::parse_csv(std::string(reinterpret_cast<const char*>(data), size), "fuzz.csv");
    if (!t.header.empty()) t.column(t.header[0], "fuzz.csv");
  });
}
