#pragma once
// Whole-file integrity of an encoded image, checked before it is decoded: the decoders
// themselves (libjpeg, libpng, libtiff through OpenCV) treat much of the damage as a warning
// and fill the missing part, so a truncated or corrupt file would otherwise train and predict
// as if it were whole. Each check throws drifa::Error "SOURCE: corrupt|truncated FORMAT: ...".
#include <string>

namespace drifa::data {

// JPEG: the entropy-coded data is decoded by libjpeg (no inverse DCT) and any warning it
// raises (premature end of data, corrupt segment, extraneous bytes) refuses the file.
void check_jpeg_stream(const std::string& bytes, const std::string& source);

// PNG: every chunk lies inside the file and passes its CRC, IHDR comes first, at least one
// IDAT, and IEND ends the stream.
void check_png_chunks(const std::string& bytes, const std::string& source);

// TIFF: the first directory's strips (or tiles) have offsets and byte counts, and each lies
// inside the file.
void check_tiff_strips(const std::string& bytes, const std::string& source);

}  // namespace drifa::data
