#pragma once
// Preprocessing (spec section 7: RGB, resize, [0, 1], no mean/std normalisation) and the
// online augmentation the authors used (rotation, translation, brightness), plus optional flips.
#include <cstdint>
#include <random>

#include <opencv2/core.hpp>
#include <torch/types.h>

#include <nlohmann/json_fwd.hpp>

namespace drifa::data {

struct AugmentConfig {
  double rotation_deg = 0;    // uniform in [-r, r]
  double translate_px = 0;    // uniform in [-t, t] on each axis, at the network's input size
  double brightness_lo = 1, brightness_hi = 1;
  bool hflip = false, vflip = false;
  bool enabled() const {
    return rotation_deg > 0 || translate_px > 0 || brightness_lo != 1 || brightness_hi != 1 || hflip || vflip;
  }
  nlohmann::json to_json() const;
  static AugmentConfig from_json(const nlohmann::json& j, const std::string& source = "run config");  // validated
};

// decoded image -> `channels` channels, size x size (area interpolation when shrinking).
// Throws drifa::Error naming `source` if the image is smaller than min_side on either axis.
cv::Mat preprocess(const cv::Mat& decoded, int size, int channels, int min_side, const std::string& source);

// Random affine + brightness + flips; deterministic for a given rng state.
cv::Mat augment(const cv::Mat& img, const AugmentConfig& cfg, std::mt19937_64& rng);

// HWC float image -> CHW float tensor (a copy).
torch::Tensor to_tensor(const cv::Mat& img);

}  // namespace drifa::data
