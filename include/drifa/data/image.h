#pragma once
// Decoding one image file into a float image in [0, 1]: PNG, JPEG, BMP, TIFF (8/16 bit, grey,
// RGB, RGBA) through OpenCV, and single-frame DICOM through GDCM. Every failure is a
// drifa::Error naming the file and what is wrong with it.
#include <optional>
#include <string>

#include <opencv2/core.hpp>

#include "drifa/io/settings.h"

namespace drifa::data {

struct DicomOptions {
  // VOI window; when unset, the file's first Window Center/Width is used, else the image's
  // own min..max (after rescale slope/intercept).
  std::optional<double> window_center, window_width;
};

// Returns CV_32FC1 (grey) or CV_32FC3 (RGB order), values in [0, 1]. Alpha is dropped.
// The format comes from the file's signature (DICOM also by extension), never from its name
// alone; the header's dimensions are checked against max_pixels before anything is decoded;
// truncated or corrupt JPEG, PNG and TIFF files (data/image_integrity.h) and float images with
// NaN/infinite pixels are refused.
cv::Mat decode_image(const std::string& path, const DicomOptions& dicom = {},
                     int64_t max_pixels = settings::limits::kDefaultImagePixels);
// The same from the file's bytes; source names it in messages (and its extension marks DICOM).
cv::Mat decode_image_bytes(const std::string& bytes, const std::string& source, const DicomOptions& dicom = {},
                           int64_t max_pixels = settings::limits::kDefaultImagePixels);
// A file's bytes for decoding: refuses a missing, empty, non-regular (folder, FIFO) or
// oversized (settings::limits::kMaxFileBytes) file, naming it.
std::string read_image_file(const std::string& path);

bool is_image_path(const std::string& path);  // by extension, including .dcm

// Converts to the model's channel count: grey -> RGB replicates, RGB -> grey by luminance.
cv::Mat to_channels(const cv::Mat& img, int channels);

// Encodes by the path's extension (PNG, TIFF, ...) and writes atomically, creating the folder.
// Throws drifa::Error naming the file.
void write_image(const std::string& path, const cv::Mat& img);

}  // namespace drifa::data
