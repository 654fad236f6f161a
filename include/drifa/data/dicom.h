#pragma once
// Single-frame DICOM through GDCM: stored values -> modality values (rescale slope/intercept)
// -> VOI window -> [0, 1], with MONOCHROME1 inverted so that bright means dense everywhere.
#include <string>

#include <opencv2/core.hpp>

#include "drifa/data/image.h"

namespace drifa::data {

// From the file's bytes (source names it). The Pixel Data element's declared length is checked
// against the file before GDCM reads it, and the dimensions against max_pixels before the
// pixel buffer is allocated. Throws drifa::Error naming source.
cv::Mat decode_dicom_bytes(const std::string& bytes, const std::string& source, const DicomOptions& opt,
                           int64_t max_pixels = settings::limits::kDefaultImagePixels);

}  // namespace drifa::data
