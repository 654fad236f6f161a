#pragma once
// Single-frame DICOM through GDCM: stored values -> modality values (rescale slope/intercept)
// -> VOI window -> [0, 1], with MONOCHROME1 inverted so that bright means dense everywhere.
#include <string>

#include <opencv2/core.hpp>

#include "drifa/data/image.h"

namespace drifa::data {

cv::Mat decode_dicom(const std::string& path, const DicomOptions& opt);

}  // namespace drifa::data
