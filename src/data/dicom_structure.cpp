#include "drifa/data/dicom_structure.h"

#include <cstring>

#include "drifa/error.h"

namespace drifa::data {

namespace {

constexpr uint32_t kUndefined = 0xFFFFFFFFu;
constexpr int kMaxDepth = 16;

bool long_form(const char* vr) {  // VRs with 2 reserved bytes and a 32-bit length (PS3.5 7.1.2)
  static const char* kLong[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"};
  for (const char* v : kLong)
    if (std::memcmp(vr, v, 2) == 0) return true;
  return false;
}

bool known_vr(const char* vr) {
  static const char* kAll[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF", "OL",
                               "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US",
                               "UT", "UV"};
  for (const char* v : kAll)
    if (std::memcmp(vr, v, 2) == 0) return true;
  return false;
}

class Walker {
 public:
  Walker(const std::string& b, const std::string& source) : b_(b), source_(source) {}

  DicomStructure walk() {
    DicomStructure s;
    size_t pos = 0;
    if (b_.size() >= 132 && b_.compare(128, 4, "DICM") == 0) pos = 132;
    // The file meta group is always explicit VR little endian.
    little_ = true;
    explicit_ = true;
    while (pos + 4 <= b_.size() && u16(pos) == 0x0002) {
      const auto e = element(pos, b_.size(), 0);
      if (e.group == 0x0002 && e.element == 0x0010 && e.length != kUndefined) {
        s.transfer_syntax = b_.substr(e.value, e.length);
        while (!s.transfer_syntax.empty() && (s.transfer_syntax.back() == '\0' || s.transfer_syntax.back() == ' '))
          s.transfer_syntax.pop_back();
      }
      pos = e.next;
    }
    if (s.transfer_syntax == "1.2.840.10008.1.2.1.99")
      fail(pos, "deflated transfer syntax is not supported; store the file uncompressed or with an image codec");
    little_ = s.transfer_syntax != "1.2.840.10008.1.2.2";
    // No meta group (a bare data set) is read as implicit VR little endian, as GDCM does.
    explicit_ = !(s.transfer_syntax.empty() || s.transfer_syntax == "1.2.840.10008.1.2");
    dataset(pos, b_.size(), 0, false);
    s.pixel_data_length = pixel_length_;
    return s;
  }

 private:
  struct Element {
    uint16_t group, element;
    bool sq;          // a sequence (explicit SQ, or undefined-length UN / implicit)
    uint32_t length;  // kUndefined for undefined length
    size_t value, next;
  };

  [[noreturn]] void fail(size_t at, const std::string& what) const {
    throw Error(source_ + ": malformed DICOM at byte " + std::to_string(at) + ": " + what);
  }
  void need(size_t at, size_t n, size_t end, const char* what) const {
    if (at > end || end - at < n) fail(at, std::string(what) + " is cut off (truncated file?)");
  }
  uint16_t u16(size_t at) const {
    const auto* p = reinterpret_cast<const unsigned char*>(b_.data() + at);
    return little_ ? uint16_t(p[0] | p[1] << 8) : uint16_t(p[0] << 8 | p[1]);
  }
  uint32_t u32(size_t at) const {
    const auto* p = reinterpret_cast<const unsigned char*>(b_.data() + at);
    return little_ ? uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24
                   : uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
  }

  // One element header at pos (not an item or delimiter), within [.., end).
  Element element(size_t pos, size_t end, int depth) {
    need(pos, 4, end, "an element tag");
    Element e{u16(pos), u16(pos + 2), false, 0, 0, 0};
    if (e.group == 0xFFFE) fail(pos, "an item or delimiter tag outside a sequence");
    if (explicit_) {
      need(pos + 4, 2, end, "a value representation");
      const char* vr = b_.data() + pos + 4;
      if (!known_vr(vr)) fail(pos + 4, "unknown value representation");
      if (long_form(vr)) {
        need(pos + 6, 6, end, "a value length");
        e.length = u32(pos + 8);
        e.value = pos + 12;
      } else {
        need(pos + 6, 2, end, "a value length");
        e.length = u16(pos + 6);
        e.value = pos + 8;
      }
      e.sq = std::memcmp(vr, "SQ", 2) == 0 || (e.length == kUndefined && std::memcmp(vr, "UN", 2) == 0);
    } else {
      need(pos + 4, 4, end, "a value length");
      e.length = u32(pos + 4);
      e.value = pos + 8;
      e.sq = e.length == kUndefined;  // only a sequence can have an undefined length here
    }
    const bool pixel_data = e.group == 0x7FE0 && e.element == 0x0010 && depth == 0;
    if (e.length == kUndefined) {
      if (pixel_data) {
        pixel_length_ = kUndefined;
        e.next = items(e.value, end, depth, /*fragments=*/true);
      } else if (e.sq) {
        e.next = items(e.value, end, depth, false);
      } else {
        fail(pos, "undefined length on an element that is not a sequence");
      }
      return e;
    }
    if (e.length > end - e.value) {
      if (pixel_data)
        throw Error(source_ + ": truncated DICOM pixel data (" + std::to_string(end - e.value) + " of " + std::to_string(e.length) +
                    " bytes present)");
      fail(pos, "a value of " + std::to_string(e.length) + " bytes runs past the end (" + std::to_string(end - e.value) +
                    " left; truncated file?)");
    }
    if (pixel_data) pixel_length_ = e.length;
    e.next = e.value + e.length;
    // A sequence of defined length (or, in implicit VR, a value that starts with an item tag).
    if (e.sq || (!explicit_ && e.length >= 8 && u16(e.value) == 0xFFFE && u16(e.value + 2) == 0xE000))
      if (items(e.value, e.next, depth, false) != e.next) fail(e.value, "a sequence that does not fill its length");
    return e;
  }

  // The items of a sequence (or pixel data fragments) from pos; stops at the sequence delimiter
  // (undefined length) or at end (defined length). Returns the position after the sequence.
  size_t items(size_t pos, size_t end, int depth, bool fragments) {
    if (depth + 1 > kMaxDepth) fail(pos, "sequences nested deeper than " + std::to_string(kMaxDepth));
    while (pos < end) {
      need(pos, 8, end, "an item tag");
      const uint16_t g = u16(pos), el = u16(pos + 2);
      const uint32_t len = u32(pos + 4);
      if (g == 0xFFFE && el == 0xE0DD) return pos + 8;  // sequence delimiter
      if (g != 0xFFFE || el != 0xE000) fail(pos, "an element where a sequence item was expected");
      const size_t value = pos + 8;
      if (len == kUndefined) {
        if (fragments) fail(pos, "a pixel data fragment of undefined length");
        pos = dataset(value, end, depth + 1, true);
        continue;
      }
      if (len > end - value) fail(pos, "an item of " + std::to_string(len) + " bytes runs past the end (truncated file?)");
      if (!fragments && dataset(value, value + len, depth + 1, false) != value + len) fail(value, "an item that does not fill its length");
      pos = value + len;
    }
    if (fragments || end == b_.size()) fail(pos, "a sequence without its delimiter (truncated file?)");
    return pos;
  }

  // Elements from pos to end, or, in an item of undefined length, to its item delimiter.
  size_t dataset(size_t pos, size_t end, int depth, bool until_delimiter) {
    while (pos < end) {
      need(pos, 4, end, "an element tag");
      if (until_delimiter && u16(pos) == 0xFFFE && u16(pos + 2) == 0xE00D) {
        need(pos, 8, end, "an item delimiter");
        return pos + 8;
      }
      pos = element(pos, end, depth).next;
    }
    if (until_delimiter) fail(pos, "an item without its delimiter (truncated file?)");
    return pos;
  }

  const std::string& b_;
  const std::string& source_;
  bool little_ = true, explicit_ = true;
  int64_t pixel_length_ = -1;
};

}  // namespace

DicomStructure check_dicom_structure(const std::string& bytes, const std::string& source) {
  return Walker(bytes, source).walk();
}

}  // namespace drifa::data
