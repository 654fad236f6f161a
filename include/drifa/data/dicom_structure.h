#pragma once
// The element structure of a DICOM file, walked before GDCM reads it. Debian's GDCM keeps its
// assert()s, and a stream that ends inside an element header (a half-copied file) or an item
// tag where none may stand aborts the whole process there. This walk refuses such files with
// an error naming the byte, so GDCM only ever reads structurally complete data sets:
// preamble and "DICM" (optional), the file meta group (explicit VR little endian), then the
// data set in its transfer syntax (implicit VR LE, explicit VR LE or BE), sequences and items
// of defined or undefined length, and encapsulated pixel data fragments.
#include <cstdint>
#include <string>

namespace drifa::data {

struct DicomStructure {
  std::string transfer_syntax;  // (0002,0010), "" when there is no meta group
  int64_t pixel_data_length = -1;  // declared length of (7FE0,0010); -1 none; 0xFFFFFFFF encapsulated
};

// Throws drifa::Error "SOURCE: malformed DICOM: ..." naming the byte offset.
DicomStructure check_dicom_structure(const std::string& bytes, const std::string& source);

}  // namespace drifa::data
