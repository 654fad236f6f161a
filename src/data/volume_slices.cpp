#include "drifa/data/volume_slices.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "drifa/error.h"

namespace drifa::data {

namespace {

// The canonical axis a recipe cuts across, and the slice's (rows, columns) axes.
int axis_index(const std::string& axis) { return axis == "sagittal" ? 0 : axis == "coronal" ? 1 : 2; }

struct Preset {
  const char* name;
  double center, width;
};
constexpr Preset kPresets[] = {{"brain", 40, 80}, {"soft_tissue", 40, 400}, {"lung", -600, 1500}, {"bone", 400, 1800}};

// One plane of the canonical volume, oriented for display: axial anterior up and the patient's
// right on the left; coronal and sagittal superior up (sagittal anterior on the left).
cv::Mat plane(const Volume& v, int axis, int64_t index) {
  const auto& n = v.info.size;
  if (axis == 2) {
    cv::Mat m(static_cast<int>(n[1]), static_cast<int>(n[0]), CV_32F);
    for (int64_t r = 0; r < n[1]; ++r)
      for (int64_t c = 0; c < n[0]; ++c) m.at<float>(int(r), int(c)) = v.at(c, r, index);
    return m;
  }
  const int64_t cols = axis == 1 ? n[0] : n[1];
  cv::Mat m(static_cast<int>(n[2]), static_cast<int>(cols), CV_32F);
  for (int64_t r = 0; r < n[2]; ++r)
    for (int64_t c = 0; c < cols; ++c)
      m.at<float>(int(r), int(c)) = axis == 1 ? v.at(c, index, n[2] - 1 - r) : v.at(index, c, n[2] - 1 - r);
  return m;
}

// (row spacing, column spacing) of a plane.
std::pair<double, double> plane_spacing(const Volume& v, int axis) {
  const auto& s = v.info.spacing;
  if (axis == 2) return {s[1], s[0]};
  return {s[2], axis == 1 ? s[0] : s[1]};
}

}  // namespace

VolumeOptions read_volume_options(settings::Table& m, int channels) {
  namespace L = settings::limits;
  VolumeOptions v;
  v.axis = m.choice("axis", v.axis, {"axial", "coronal", "sagittal"});
  v.slices = m.choice("slices", v.slices, {"all", "every", "central", "mask"});
  if (v.slices == "every") v.every = m.integer("every", 2, L::kSliceStep);
  if (v.slices == "central") v.central = m.integer("central", 1, L::kSliceStep);
  const auto choices = intensity_choices();
  std::string allowed;
  for (const auto& c : choices) allowed += (allowed.empty() ? "" : ", ") + c;
  v.intensity = m.string("intensity", v.intensity, false);
  if (std::find(choices.begin(), choices.end(), v.intensity) == choices.end())
    m.fail("intensity", "found '" + v.intensity + "', allowed " + allowed);
  if (v.intensity == "percentile") {
    const auto p = m.reals("percentiles", {v.percentile_lo, v.percentile_hi}, L::kPercentile, {2, 2});
    if (!(p[0] < p[1]))
      m.fail("percentiles", "found [" + std::to_string(p[0]) + ", " + std::to_string(p[1]) + "], allowed [lo, hi] with lo < hi");
    v.percentile_lo = p[0];
    v.percentile_hi = p[1];
  }
  if (v.intensity == "window") {
    if (!m.has("window_center") || !m.has("window_width"))
      m.fail("window_center", "intensity = \"window\" needs window_center and window_width");
    v.window_center = m.real("window_center", 0, L::kWindow);
    v.window_width = m.real("window_width", 1, L::kWindowWidth);
  }
  v.in_plane_spacing = m.real("in_plane_spacing", 0, L::kSpacingMm);
  v.stack = static_cast<int>(m.integer("stack", 1, {1, 5}));
  if (v.stack % 2 == 0) m.fail("stack", "found " + std::to_string(v.stack) + ", allowed 1, 3 or 5");
  v.series = m.string("series", "", false);
  if (v.stack > 1 && v.stack != channels)
    m.fail("stack", "found " + std::to_string(v.stack) + " adjacent slices as channels, but the input has " + std::to_string(channels) +
                        " channels; set data.channels = " + std::to_string(v.stack));
  return v;
}

nlohmann::json to_json(const VolumeOptions& v) {
  nlohmann::json j{{"axis", v.axis}, {"slices", v.slices}, {"intensity", v.intensity}, {"in_plane_spacing", v.in_plane_spacing}, {"stack", v.stack}};
  if (v.slices == "every") j["every"] = v.every;
  if (v.slices == "central") j["central"] = v.central;
  if (!v.series.empty()) j["series"] = v.series;
  if (v.intensity == "percentile") j["percentiles"] = {v.percentile_lo, v.percentile_hi};
  if (v.intensity == "window") {
    j["window_center"] = v.window_center;
    j["window_width"] = v.window_width;
  }
  return j;
}

std::optional<std::pair<double, double>> ct_window(const std::string& preset) {
  for (const auto& p : kPresets)
    if (preset == p.name) return std::make_pair(p.center, p.width);
  return std::nullopt;
}

std::vector<std::string> intensity_choices() {
  std::vector<std::string> v{"percentile", "minmax", "window"};
  for (const auto& p : kPresets) v.push_back(p.name);
  return v;
}

std::vector<int64_t> select_slices(const VolumeInfo& info, const VolumeOptions& opt, const Volume* mask, const std::string& source) {
  const int a = axis_index(opt.axis);
  const int64_t n = info.size[a];
  std::vector<int64_t> out;
  if (opt.slices == "all" || opt.slices == "every") {
    const int64_t step = opt.slices == "every" ? std::max<int64_t>(1, opt.every) : 1;
    for (int64_t k = 0; k < n; k += step) out.push_back(k);
  } else if (opt.slices == "central") {
    const int64_t take = std::min(n, std::max<int64_t>(1, opt.central));
    for (int64_t k = (n - take) / 2, i = 0; i < take; ++i) out.push_back(k + i);
  } else if (opt.slices == "mask") {
    if (!mask) throw Error(source + ": slices = \"mask\" needs a mask volume (the manifest's mask_column)");
    if (mask->info.size != info.size)
      throw Error(source + ": the mask volume is " + std::to_string(mask->info.size[0]) + " x " + std::to_string(mask->info.size[1]) +
                  " x " + std::to_string(mask->info.size[2]) + " voxels, the volume " + std::to_string(info.size[0]) + " x " +
                  std::to_string(info.size[1]) + " x " + std::to_string(info.size[2]));
    const auto& s = info.size;
    for (int64_t k = 0; k < n; ++k) {
      bool any = false;
      for (int64_t p = 0; p < s[(a + 1) % 3] && !any; ++p)
        for (int64_t q = 0; q < s[(a + 2) % 3] && !any; ++q) {
          std::array<int64_t, 3> x{};
          x[a] = k;
          x[(a + 1) % 3] = p;
          x[(a + 2) % 3] = q;
          any = mask->at(x[0], x[1], x[2]) != 0;
        }
      if (any) out.push_back(k);
    }
    if (out.empty()) throw Error(source + ": the mask volume is zero everywhere: no slice selected");
  } else {
    throw Error(source + ": slices = \"" + opt.slices + "\", allowed all, every, central, mask");
  }
  return out;
}

std::string slice_ref(const std::string& volume, const std::string& modality, int64_t index) {
  return volume + "#" + modality + ":" + std::to_string(index);
}

std::optional<SliceRef> parse_slice_ref(const std::string& path) {
  const auto hash = path.rfind('#');
  if (hash == std::string::npos) return std::nullopt;
  const auto colon = path.rfind(':');
  if (colon == std::string::npos || colon < hash + 2 || colon + 1 >= path.size()) return std::nullopt;
  const std::string digits = path.substr(colon + 1);
  if (digits.size() > 12 || !std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); }))
    return std::nullopt;
  const std::string modality = path.substr(hash + 1, colon - hash - 1);
  if (modality.find('/') != std::string::npos) return std::nullopt;
  return SliceRef{path.substr(0, hash), modality, std::stoll(digits)};
}

void normalise_intensity(Volume& v, const VolumeOptions& opt) {
  double lo, hi;
  if (auto w = opt.intensity == "window" ? std::make_optional(std::make_pair(opt.window_center, opt.window_width))
                                         : ct_window(opt.intensity)) {
    lo = w->first - w->second / 2;
    hi = w->first + w->second / 2;
  } else if (opt.intensity == "minmax") {
    const auto [mn, mx] = std::minmax_element(v.voxels.begin(), v.voxels.end());
    lo = v.voxels.empty() ? 0 : *mn;
    hi = v.voxels.empty() ? 1 : *mx;
  } else {  // percentile
    std::vector<float> s = v.voxels;
    auto pick = [&](double pct) {
      if (s.empty()) return 0.0;
      const size_t i = std::min(s.size() - 1, static_cast<size_t>(std::llround(pct / 100.0 * double(s.size() - 1))));
      std::nth_element(s.begin(), s.begin() + long(i), s.end());
      return double(s[i]);
    };
    lo = pick(opt.percentile_lo);
    hi = pick(opt.percentile_hi);
  }
  const double range = hi - lo;
  for (auto& x : v.voxels) x = range > 0 ? static_cast<float>(std::clamp((x - lo) / range, 0.0, 1.0)) : 0.0f;
}

Volume read_normalised(const std::string& volume, const VolumeOptions& opt, int64_t max_voxels) {
  Volume v = read_volume(volume, max_voxels, opt.series);
  normalise_intensity(v, opt);
  return v;
}

cv::Mat extract_slice(const Volume& v, const VolumeOptions& opt, int64_t index, const std::string& source) {
  const int a = axis_index(opt.axis);
  const int64_t n = v.info.size[a];
  if (index < 0 || index >= n)
    throw Error(source + ": slice " + std::to_string(index) + " outside the volume's " + std::to_string(n) + " " + opt.axis + " slices");
  const auto [row_sp, col_sp] = plane_spacing(v, a);
  const double target = opt.in_plane_spacing > 0 ? opt.in_plane_spacing : std::min(row_sp, col_sp);
  std::vector<cv::Mat> channels;
  const int half = opt.stack / 2;
  for (int d = -half; d <= half; ++d) {
    const int64_t k = std::clamp<int64_t>(index + d, 0, n - 1);  // edges repeat the end slice
    cv::Mat p = plane(v, a, k);
    const int rows = std::max(1, int(std::lround(p.rows * row_sp / target)));
    const int cols = std::max(1, int(std::lround(p.cols * col_sp / target)));
    if (rows != p.rows || cols != p.cols) {
      cv::Mat r;
      cv::resize(p, r, cv::Size(cols, rows), 0, 0, rows < p.rows || cols < p.cols ? cv::INTER_AREA : cv::INTER_LINEAR);
      p = r;
    }
    const int side = std::max(p.rows, p.cols);
    cv::Mat sq(side, side, CV_32F, cv::Scalar(0));
    p.copyTo(sq(cv::Rect((side - p.cols) / 2, (side - p.rows) / 2, p.cols, p.rows)));
    channels.push_back(sq);
  }
  if (channels.size() == 1) return channels[0];
  cv::Mat out;
  cv::merge(channels, out);
  return out;
}

std::shared_ptr<const Volume> VolumeCache::get(const std::string& volume, const std::string& modality, const VolumeOptions& opt,
                                               int64_t max_voxels) {
  const std::string key = modality + "\n" + volume;
  std::shared_ptr<std::mutex> gate;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = lru_.begin(); it != lru_.end(); ++it)
      if (it->first == key) {
        lru_.splice(lru_.begin(), lru_, it);
        return it->second;
      }
    auto& g = loading_[key];
    if (!g) g = std::make_shared<std::mutex>();
    gate = g;
  }
  std::lock_guard<std::mutex> one_reader(*gate);  // workers wanting the same volume wait for one read
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& e : lru_)
      if (e.first == key) return e.second;
  }
  std::shared_ptr<const Volume> v = std::make_shared<Volume>(read_normalised(volume, opt, max_voxels));
  std::lock_guard<std::mutex> lock(mu_);
  lru_.emplace_front(key, v);
  while (lru_.size() > capacity_) lru_.pop_back();
  loading_.erase(key);
  return v;
}

cv::Mat decode_slice(const SliceRef& ref, const std::map<std::string, VolumeOptions>& recipes, int64_t max_voxels, VolumeCache* cache) {
  const std::string source = slice_ref(ref.volume, ref.modality, ref.index);
  auto it = recipes.find(ref.modality);
  if (it == recipes.end()) throw Error(source + ": a slice of modality '" + ref.modality + "', which is not a volume modality here");
  if (cache) return extract_slice(*cache->get(ref.volume, ref.modality, it->second, max_voxels), it->second, ref.index, source);
  return extract_slice(read_normalised(ref.volume, it->second, max_voxels), it->second, ref.index, source);
}

}  // namespace drifa::data
