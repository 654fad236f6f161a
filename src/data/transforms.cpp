#include "drifa/data/transforms.h"

#include <functional>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "drifa/data/image.h"
#include "drifa/error.h"
#include "drifa/io/settings.h"

namespace drifa::data {

nlohmann::json AugmentConfig::to_json() const {
  return {{"rotation", rotation_deg},
          {"translate", translate_px},
          {"brightness", {brightness_lo, brightness_hi}},
          {"hflip", hflip},
          {"vflip", vflip}};
}

AugmentConfig AugmentConfig::from_json(const nlohmann::json& j, const std::string& source) {
  namespace L = settings::limits;
  settings::Table t(j, source, "augment");
  AugmentConfig a;
  a.rotation_deg = t.real("rotation", a.rotation_deg, L::kRotation);
  a.translate_px = t.real("translate", a.translate_px, L::kTranslate);
  const auto b = t.reals("brightness", {a.brightness_lo, a.brightness_hi}, L::kBrightness, {2, 2});
  if (b[0] > b[1]) t.fail("brightness", "found [" + settings::show(b[0]) + ", " + settings::show(b[1]) + "], allowed [low, high] with low <= high");
  a.brightness_lo = b[0];
  a.brightness_hi = b[1];
  a.hflip = t.boolean("hflip", a.hflip);
  a.vflip = t.boolean("vflip", a.vflip);
  t.finish();
  return a;
}

namespace {
// OpenCV's resize, warpAffine and scalar arithmetic take at most four channels; a volume's stack
// of five goes through them a channel at a time.
cv::Mat per_channel_group(const cv::Mat& img, const std::function<cv::Mat(const cv::Mat&)>& f) {
  if (img.channels() <= 4) return f(img);
  std::vector<cv::Mat> planes;
  cv::split(img, planes);
  for (auto& p : planes) p = f(p);
  cv::Mat out;
  cv::merge(planes, out);
  return out;
}
}  // namespace

cv::Mat preprocess(const cv::Mat& decoded, int size, int channels, int min_side, const std::string& source) {
  if (decoded.rows < min_side || decoded.cols < min_side)
    throw Error(source + ": image too small (" + std::to_string(decoded.cols) + "x" + std::to_string(decoded.rows) +
                ", at least " + std::to_string(min_side) + "x" + std::to_string(min_side) + " needed)");
  cv::Mat img = to_channels(decoded, channels);
  if (img.rows == size && img.cols == size) return img.clone();
  const bool shrink = img.rows > size || img.cols > size;
  return per_channel_group(img, [&](const cv::Mat& x) {
    cv::Mat out;
    cv::resize(x, out, cv::Size(size, size), 0, 0, shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
    return out;
  });
}

cv::Mat augment(const cv::Mat& img, const AugmentConfig& a, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0), u01(0.0, 1.0);
  // Draw every random number in a fixed order so results do not depend on which options are on.
  const double angle = a.rotation_deg * u(rng), tx = a.translate_px * u(rng), ty = a.translate_px * u(rng);
  const double bright = a.brightness_lo + (a.brightness_hi - a.brightness_lo) * u01(rng);
  const bool hf = a.hflip && u01(rng) < 0.5, vf = a.vflip && u01(rng) < 0.5;
  // `img` is the cached image: every step writes a new buffer and never touches it.
  // Five-channel stacks go a channel at a time, with the same draws for every channel.
  return per_channel_group(img, [&](const cv::Mat& img) {
    cv::Mat out = img;
    if (angle != 0 || tx != 0 || ty != 0) {
      cv::Mat m = cv::getRotationMatrix2D(cv::Point2f(img.cols / 2.0f - 0.5f, img.rows / 2.0f - 0.5f), angle, 1.0);
      m.at<double>(0, 2) += tx;
      m.at<double>(1, 2) += ty;
      cv::Mat warped;
      // Keras ImageDataGenerator fills with the nearest pixel by default.
      cv::warpAffine(img, warped, m, img.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
      out = warped;
    }
    if (bright != 1.0) {
      cv::Mat scaled;
      out.convertTo(scaled, -1, bright);
      cv::min(scaled, 1.0, scaled);
      out = scaled;
    }
    for (int axis : {hf ? 1 : -2, vf ? 0 : -2}) {
      if (axis == -2) continue;
      cv::Mat flipped;
      cv::flip(out, flipped, axis);
      out = flipped;
    }
    return out;
  });
}

torch::Tensor to_tensor(const cv::Mat& img) {
  cv::Mat c = img.isContinuous() ? img : img.clone();
  return torch::from_blob(c.data, {c.rows, c.cols, c.channels()}, torch::kFloat32).permute({2, 0, 1}).clone();
}

}  // namespace drifa::data
