// Image decoding (PNG, JPEG, BMP, TIFF through the header probe and OpenCV) with a small pixel
// limit, so that a header claiming a huge image is refused and never allocated.
#include "drifa/data/image.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return drifa::fuzz::expect_clean([&] {
    drifa::data::decode_image_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz.img", {}, 1 << 20);
  });
}
