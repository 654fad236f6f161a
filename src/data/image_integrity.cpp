#include "drifa/data/image_integrity.h"

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

#include <jpeglib.h>
#include <zlib.h>

#include "drifa/error.h"

namespace drifa::data {

namespace {

// ---- JPEG ------------------------------------------------------------------------------------

// libjpeg reports through callbacks and unwinds with longjmp: only plain C data may live in the
// frame that calls setjmp, and the message is copied out before anything throws.
struct JpegErrors {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  int warning;  // 1: a warning (damaged data), 0: an error
};

void jpeg_fail(j_common_ptr info) {
  auto* e = reinterpret_cast<JpegErrors*>(info->err);
  (*info->err->format_message)(info, e->message);
  e->warning = 0;
  std::longjmp(e->jump, 1);
}

void jpeg_message(j_common_ptr info, int level) {
  if (level >= 0) return;  // trace messages
  auto* e = reinterpret_cast<JpegErrors*>(info->err);
  (*info->err->format_message)(info, e->message);
  e->warning = 1;
  std::longjmp(e->jump, 1);
}

void jpeg_output_nothing(j_common_ptr) {}

// 0 when the stream decodes without a warning; otherwise 1 and e->message says why.
int jpeg_scan(const unsigned char* data, unsigned long size, JpegErrors* e) {
  jpeg_decompress_struct info;
  std::memset(&info, 0, sizeof info);
  info.err = jpeg_std_error(&e->pub);
  e->pub.error_exit = jpeg_fail;
  e->pub.emit_message = jpeg_message;
  e->pub.output_message = jpeg_output_nothing;
  e->message[0] = '\0';
  if (setjmp(e->jump)) {
    jpeg_destroy_decompress(&info);
    return 1;
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, data, size);
  jpeg_read_header(&info, TRUE);
  // Entropy decoding of every scan into coefficient arrays: every damaged segment is seen,
  // at a fraction of a full decode's cost.
  jpeg_read_coefficients(&info);
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  return 0;
}

// ---- PNG and TIFF ----------------------------------------------------------------------------

uint32_t be32(const std::string& b, size_t at) {
  return (uint32_t(uint8_t(b[at])) << 24) | (uint32_t(uint8_t(b[at + 1])) << 16) | (uint32_t(uint8_t(b[at + 2])) << 8) |
         uint32_t(uint8_t(b[at + 3]));
}

std::string printable_type(const std::string& b, size_t at) {
  std::string t = b.substr(at, 4);
  for (auto& c : t)
    if (c < 0x20 || c > 0x7e) c = '?';
  return t;
}

}  // namespace

void check_jpeg_stream(const std::string& bytes, const std::string& source) {
  JpegErrors e;
  if (jpeg_scan(reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<unsigned long>(bytes.size()), &e) != 0)
    throw Error(source + ": corrupt or truncated JPEG (libjpeg: " + e.message + ")");
}

void check_png_chunks(const std::string& b, const std::string& source) {
  size_t at = 8;  // after the signature
  bool first = true, idat = false;
  while (true) {
    if (at + 12 > b.size())
      throw Error(source + ": truncated PNG: the file ends at byte " + std::to_string(b.size()) + " before its IEND chunk");
    const uint32_t len = be32(b, at);
    const std::string type = printable_type(b, at + 4);
    if (len > 0x7fffffffu || len > b.size() - at - 12)
      throw Error(source + ": truncated PNG: chunk " + type + " at byte " + std::to_string(at) + " declares " +
                  std::to_string(len) + " bytes, past the end of the file");
    const uint32_t stored = be32(b, at + 8 + len);
    const auto computed = static_cast<uint32_t>(
        ::crc32(::crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(b.data() + at + 4), static_cast<uInt>(len + 4)));
    if (stored != computed)
      throw Error(source + ": corrupt PNG: chunk " + type + " at byte " + std::to_string(at) + " fails its CRC check");
    if (first && type != "IHDR") throw Error(source + ": corrupt PNG: the first chunk is " + type + ", not IHDR");
    first = false;
    if (type == "IDAT") idat = true;
    at += 12 + len;
    if (type == "IEND") break;
  }
  if (!idat) throw Error(source + ": corrupt PNG: no IDAT chunk (no image data)");
}

void check_tiff_strips(const std::string& b, const std::string& source) {
  const bool little = b[0] == 'I';
  auto un = [&](size_t at, int n) -> uint64_t {
    if (at + n > b.size()) throw Error(source + ": truncated TIFF: a value at byte " + std::to_string(at) + " lies past the end of the file");
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t(uint8_t(b[at + (little ? i : n - 1 - i)])) << (8 * i);
    return v;
  };
  const size_t ifd = un(4, 4);
  const size_t entries = un(ifd, 2);
  struct Array {
    uint32_t type = 0;
    uint64_t count = 0;
    size_t at = 0;  // where the values are
  };
  Array offsets, counts;
  const char* unit = "strip";
  for (size_t e = 0; e < entries; ++e) {
    const size_t at = ifd + 2 + e * 12;
    const auto tag = un(at, 2);
    Array a{static_cast<uint32_t>(un(at + 2, 2)), un(at + 4, 4), 0};
    if (tag != 273 && tag != 279 && tag != 324 && tag != 325) continue;
    if (a.type != 3 && a.type != 4)
      throw Error(source + ": corrupt TIFF: tag " + std::to_string(tag) + " has type " + std::to_string(a.type) + ", not SHORT or LONG");
    const uint64_t bytes = a.count * (a.type == 3 ? 2 : 4);
    if (a.count == 0 || a.count > b.size()) throw Error(source + ": corrupt TIFF: tag " + std::to_string(tag) + " holds " + std::to_string(a.count) + " values");
    a.at = bytes <= 4 ? at + 8 : static_cast<size_t>(un(at + 8, 4));
    if (a.at + bytes > b.size())
      throw Error(source + ": truncated TIFF: the values of tag " + std::to_string(tag) + " lie past the end of the file");
    if (tag == 273 || tag == 324) offsets = a;
    else counts = a;
    if (tag >= 324) unit = "tile";
  }
  if (offsets.count == 0) throw Error(source + ": corrupt TIFF: no strip or tile offsets in the first directory");
  if (counts.count == 0) throw Error(source + ": corrupt TIFF: no strip or tile byte counts in the first directory");
  if (counts.count != offsets.count)
    throw Error(source + ": corrupt TIFF: " + std::to_string(offsets.count) + " " + unit + " offsets but " +
                std::to_string(counts.count) + " byte counts");
  auto value = [&](const Array& a, uint64_t i) { return a.type == 3 ? un(a.at + i * 2, 2) : un(a.at + i * 4, 4); };
  for (uint64_t i = 0; i < offsets.count; ++i) {
    const uint64_t off = value(offsets, i), n = value(counts, i);
    if (off > b.size() || n > b.size() - off)
      throw Error(source + ": truncated TIFF: " + unit + " " + std::to_string(i) + " (bytes " + std::to_string(off) + " to " +
                  std::to_string(off + n) + ") runs past the end of the file (" + std::to_string(b.size()) + " bytes)");
  }
}

}  // namespace drifa::data
