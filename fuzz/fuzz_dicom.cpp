// DICOM decoding (GDCM behind DRIFA's length and dimension checks) with a small pixel limit.
#include "drifa/data/image.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return drifa::fuzz::expect_clean([&] {
    drifa::data::decode_image_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz.dcm", {}, 1 << 20);
  });
}
