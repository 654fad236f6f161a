#pragma once
// From a volume to the 2-D inputs the network takes: which slices, along which axis, with which
// intensity mapping, resampled how, and how many neighbours as channels (2.5D).
//
// A slice is named by a reference that the rest of DRIFA treats as an image path:
//   VOLUME#MODALITY:INDEX     e.g. /data/ct/case7.nii.gz#ct:42
// INDEX counts along the modality's axis in the canonical (LPS+) volume (data/volume.h): axial
// from inferior to superior, coronal from anterior to posterior, sagittal from right to left.
// The modality names the recipe (VolumeOptions) that turns the volume into pixels, so one
// reference always decodes to the same image.
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <opencv2/core.hpp>

#include "drifa/data/volume.h"
#include "drifa/io/settings.h"

namespace drifa::data {

struct VolumeOptions {
  std::string axis = "axial";       // axial | coronal | sagittal
  std::string slices = "all";       // all | every | central | mask
  int64_t every = 1;                // slices = every: each k-th slice from the first
  int64_t central = 1;              // slices = central: the central N slices
  // Intensity: percentile (MRI: [lo, hi] percentiles of the volume -> [0, 1]), minmax, a CT window
  // preset (brain 80/40, soft_tissue 400/40, lung 1500/-600, bone 1800/400) or window (custom).
  std::string intensity = "percentile";
  double percentile_lo = 1.0, percentile_hi = 99.0;
  double window_center = 40, window_width = 80;  // intensity = window
  double in_plane_spacing = 0;      // mm; 0 = the finer of the slice's two spacings (square pixels)
  int stack = 1;                    // 1 | 3 | 5 adjacent slices as channels; edges repeat the end slice
  // A DICOM folder holding several series (a localizer beside the scan): "" = refuse it, listing
  // them; "largest" = the series with the most files; else a SeriesInstanceUID.
  std::string series;
};

// The recipe's keys (axis, slices, every, central, intensity, percentiles, window_center,
// window_width, in_plane_spacing, stack, series), through the settings validator: the [[data.modality]]
// table of a volume modality, and the model file's drifa.volumes metadata. channels: the
// network's input channels, which a stack > 1 must equal.
VolumeOptions read_volume_options(settings::Table& t, int channels);
nlohmann::json to_json(const VolumeOptions& v);

// The window (center, width) of a CT preset, or nothing for a name that is not one.
std::optional<std::pair<double, double>> ct_window(const std::string& preset);
std::vector<std::string> intensity_choices();  // percentile, minmax, window, and the presets

// The slice indices a recipe selects from a volume of `info` (mask: the mask volume, same size).
std::vector<int64_t> select_slices(const VolumeInfo& info, const VolumeOptions& opt, const Volume* mask, const std::string& source);

std::string slice_ref(const std::string& volume, const std::string& modality, int64_t index);
struct SliceRef {
  std::string volume, modality;
  int64_t index = 0;
};
// Parses VOLUME#MODALITY:INDEX; nothing for a path that is not a slice reference.
std::optional<SliceRef> parse_slice_ref(const std::string& path);

// Voxel values -> [0, 1] by the recipe's intensity mapping, over the whole volume.
void normalise_intensity(Volume& v, const VolumeOptions& opt);
// read_volume (with the recipe's series choice), then normalise_intensity: what slices are cut from.
Volume read_normalised(const std::string& volume, const VolumeOptions& opt, int64_t max_voxels);

// One slice (CV_32FC1, or CV_32FC(stack)) of a normalised volume: oriented for display (see
// above), resampled in-plane to the recipe's spacing and padded to a square with zeros.
cv::Mat extract_slice(const Volume& normalised, const VolumeOptions& opt, int64_t index, const std::string& source);

// Normalised volumes kept for the slices still to be cut from them (slices of one volume come
// together in every list DRIFA builds), bounded by count. Thread-safe; one read per volume at a time.
class VolumeCache {
 public:
  explicit VolumeCache(size_t capacity = 4) : capacity_(capacity) {}
  std::shared_ptr<const Volume> get(const std::string& volume, const std::string& modality, const VolumeOptions& opt,
                                    int64_t max_voxels);

 private:
  size_t capacity_;
  std::mutex mu_;
  std::list<std::pair<std::string, std::shared_ptr<const Volume>>> lru_;
  std::map<std::string, std::shared_ptr<std::mutex>> loading_;
};

// The slice a reference names, decoded by its modality's recipe. Throws drifa::Error naming the
// reference (an unknown modality, an index outside the volume) or the volume file.
cv::Mat decode_slice(const SliceRef& ref, const std::map<std::string, VolumeOptions>& recipes, int64_t max_voxels,
                     VolumeCache* cache);

}  // namespace drifa::data
