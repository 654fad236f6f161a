#include "drifa/data/image_header.h"

#include "drifa/error.h"

namespace drifa::data {

namespace {

uint32_t be(const std::string& b, size_t at, int n) {
  uint32_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}

uint32_t le(const std::string& b, size_t at, int n) {
  uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}

[[noreturn]] void bad(const std::string& source, const std::string& format, const std::string& what) {
  throw Error(source + ": corrupt " + format + " header: " + what);
}

ImageHeader png(const std::string& b, const std::string& source) {
  // signature (8), then the IHDR chunk: length (4), "IHDR", width (4), height (4)
  if (b.size() < 24 || b.compare(12, 4, "IHDR") != 0) bad(source, "PNG", "no IHDR chunk (truncated file?)");
  return {"PNG", be(b, 16, 4), be(b, 20, 4)};
}

ImageHeader jpeg(const std::string& b, const std::string& source) {
  // Walk the marker segments up to the first SOFn, which holds the frame's height and width.
  size_t at = 2;
  while (true) {
    while (at < b.size() && static_cast<unsigned char>(b[at]) != 0xFF) ++at;  // tolerate padding between segments
    while (at < b.size() && static_cast<unsigned char>(b[at]) == 0xFF) ++at;  // fill bytes
    if (at >= b.size()) bad(source, "JPEG", "no frame header before the end of the file (truncated?)");
    const unsigned marker = static_cast<unsigned char>(b[at++]);
    if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length field
    if (marker == 0xD9 || marker == 0xDA) bad(source, "JPEG", "image data starts before any frame header");
    if (at + 2 > b.size()) bad(source, "JPEG", "segment cut off (truncated file)");
    const uint32_t len = be(b, at, 2);
    if (len < 2 || at + len > b.size()) bad(source, "JPEG", "segment length runs past the end of the file (truncated?)");
    const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof) {
      if (len < 7) bad(source, "JPEG", "frame header too short");
      return {"JPEG", be(b, at + 5, 2), be(b, at + 3, 2)};
    }
    at += len;
  }
}

ImageHeader bmp(const std::string& b, const std::string& source) {
  if (b.size() < 26) bad(source, "BMP", "shorter than its header (truncated file?)");
  const uint32_t dib = le(b, 14, 4);
  if (dib == 12) return {"BMP", le(b, 18, 2), le(b, 20, 2)};  // OS/2 BITMAPCOREHEADER
  const int32_t w = static_cast<int32_t>(le(b, 18, 4)), h = static_cast<int32_t>(le(b, 22, 4));
  if (w <= 0 || h == 0 || h == INT32_MIN) bad(source, "BMP", "width " + std::to_string(w) + " x height " + std::to_string(h));
  return {"BMP", w, h < 0 ? -static_cast<int64_t>(h) : h};  // negative height: rows stored top-down
}

ImageHeader tiff(const std::string& b, const std::string& source) {
  const bool little = b[0] == 'I';
  auto u16 = [&](size_t at) { return little ? le(b, at, 2) : be(b, at, 2); };
  auto u32 = [&](size_t at) { return little ? le(b, at, 4) : be(b, at, 4); };
  if (u16(2) == 43) bad(source, "TIFF", "BigTIFF is not supported; save as classic TIFF");
  const size_t ifd = u32(4);
  if (ifd < 8 || ifd + 2 > b.size()) bad(source, "TIFF", "the first directory lies outside the file (truncated?)");
  const size_t entries = u16(ifd);
  if (ifd + 2 + entries * 12 > b.size()) bad(source, "TIFF", "the first directory runs past the end of the file");
  int64_t w = -1, h = -1;
  for (size_t e = 0; e < entries; ++e) {
    const size_t at = ifd + 2 + e * 12;
    const uint32_t tag = u16(at), type = u16(at + 2);
    if (tag != 256 && tag != 257) continue;
    int64_t v;
    if (type == 3) v = u16(at + 8);       // SHORT, left-justified in the value field
    else if (type == 4) v = u32(at + 8);  // LONG
    else bad(source, "TIFF", "image width/length has type " + std::to_string(type));
    (tag == 256 ? w : h) = v;
  }
  if (w < 0 || h < 0) bad(source, "TIFF", "no ImageWidth/ImageLength in the first directory");
  return {"TIFF", w, h};
}

}  // namespace

ImageHeader probe_image_header(const std::string& b, const std::string& source) {
  if (b.size() >= 8 && b.compare(0, 8, "\x89PNG\r\n\x1a\n", 8) == 0) return png(b, source);
  if (b.size() >= 3 && static_cast<unsigned char>(b[0]) == 0xFF && static_cast<unsigned char>(b[1]) == 0xD8 &&
      static_cast<unsigned char>(b[2]) == 0xFF)
    return jpeg(b, source);
  if (b.size() >= 2 && b[0] == 'B' && b[1] == 'M') return bmp(b, source);
  if (b.size() >= 8 && (b.compare(0, 4, "II*\0", 4) == 0 || b.compare(0, 4, "MM\0*", 4) == 0 ||
                        b.compare(0, 4, "II+\0", 4) == 0 || b.compare(0, 4, "MM\0+", 4) == 0))
    return tiff(b, source);
  throw Error(source + ": not a PNG, JPEG, BMP, TIFF or DICOM image (unrecognised file signature)");
}

void check_image_size(const ImageHeader& h, int64_t max_pixels, const std::string& source) {
  if (h.width < 1 || h.height < 1)
    throw Error(source + ": " + h.format + " header gives an empty image (" + std::to_string(h.width) + "x" +
                std::to_string(h.height) + ")");
  if (h.width > max_pixels / h.height)
    throw Error(source + ": " + h.format + " header claims " + std::to_string(h.width) + "x" + std::to_string(h.height) +
                " pixels, more than the limit of " + std::to_string(max_pixels) +
                " (data.max_image_pixels); refused before decoding");
}

}  // namespace drifa::data
