#pragma once
// Decoding one image file into a float image in [0, 1]: PNG, JPEG, BMP, TIFF (8/16 bit, grey,
// RGB, RGBA) through OpenCV, and single-frame DICOM through GDCM. Every failure is a
// drifa::Error naming the file and what is wrong with it.
#include <optional>
#include <string>

#include <opencv2/core.hpp>

namespace drifa::data {

struct DicomOptions {
  // VOI window; when unset, the file's first Window Center/Width is used, else the image's
  // own min..max (after rescale slope/intercept).
  std::optional<double> window_center, window_width;
};

// Returns CV_32FC1 (grey) or CV_32FC3 (RGB order), values in [0, 1]. Alpha is dropped.
cv::Mat decode_image(const std::string& path, const DicomOptions& dicom = {});

bool is_image_path(const std::string& path);  // by extension, including .dcm
bool looks_like_dicom(const std::string& path);

// Converts to the model's channel count: grey -> RGB replicates, RGB -> grey by luminance.
cv::Mat to_channels(const cv::Mat& img, int channels);

// Encodes by the path's extension (PNG, TIFF, ...) and writes atomically, creating the folder.
// Throws drifa::Error naming the file.
void write_image(const std::string& path, const cv::Mat& img);

}  // namespace drifa::data
