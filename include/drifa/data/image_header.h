#pragma once
// An image's format and dimensions, read from its header before anything is decoded, so that a
// 0.9 MB PNG claiming 30000 x 30000 pixels is refused instead of allocating gigabytes.
// Formats: PNG, JPEG, BMP, TIFF (the ones DRIFA decodes through OpenCV; DICOM has its own path).
#include <cstdint>
#include <string>

namespace drifa::data {

struct ImageHeader {
  std::string format;  // "PNG" | "JPEG" | "BMP" | "TIFF"
  int64_t width = 0, height = 0;
};

// Throws drifa::Error "SOURCE: ..." when the bytes are none of these formats or the header is
// malformed or truncated.
ImageHeader probe_image_header(const std::string& bytes, const std::string& source);

// Refuses a zero-sized image or one of more than max_pixels pixels, naming the source.
void check_image_size(const ImageHeader& h, int64_t max_pixels, const std::string& source);

}  // namespace drifa::data
