#pragma once
// Batches for the network: decoding in worker threads, a cache of preprocessed images so epochs
// after the first never decode again, augmentation seeded per (seed, epoch, example, modality)
// so results do not depend on thread scheduling, and one batch prefetched while the model runs.
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <opencv2/core.hpp>
#include <torch/types.h>

#include "drifa/data/image.h"
#include "drifa/data/transforms.h"
#include "drifa/data/volume_slices.h"

namespace drifa::data {

// One network input: an image per modality and a label per task (-1 = unknown).
struct Example {
  std::vector<std::string> paths;
  std::vector<int64_t> labels;
  std::string group;  // the scored sample's group (data/dataset.h); "" = its own
};

struct Batch {
  std::vector<torch::Tensor> inputs;  // M x [B, C, S, S]
  std::vector<torch::Tensor> labels;  // T x [B] int64
  std::vector<size_t> indices;        // positions in the example list
};

struct ImageOptions {
  int size = 128;
  int channels = 3;
  int min_side = 8;
  DicomOptions dicom;
  int64_t max_pixels = settings::limits::kDefaultImagePixels;  // refused before decoding when larger
  // Volume modalities' recipes by modality name: a path VOLUME#MODALITY:INDEX (data/volume_slices.h)
  // of one of them decodes to that slice.
  std::map<std::string, VolumeOptions> volumes;
  int64_t max_volume_voxels = settings::limits::kDefaultVolumeVoxels;
};

// An image path or a volume slice reference, decoded (not yet resized): the one entry point for
// anything that needs a record's pixels. volumes: a cache of read volumes, or null.
cv::Mat decode_input(const std::string& path, const ImageOptions& opt, VolumeCache* volumes = nullptr);
// The same for drawing on (Grad-CAM overlays): a 2.5D slice shows its centre slice alone.
cv::Mat decode_for_display(const std::string& path, const ImageOptions& opt);

// Thread-safe cache of preprocessed (decoded, channel-converted, resized) images by path.
class ImageCache {
 public:
  explicit ImageCache(ImageOptions opt, size_t max_bytes = size_t(4) << 30) : opt_(opt), max_bytes_(max_bytes) {}
  cv::Mat get(const std::string& path);  // throws drifa::Error naming the file
  size_t size() const;
  size_t decodes() const { return decodes_; }
  const ImageOptions& options() const { return opt_; }

 private:
  ImageOptions opt_;
  size_t max_bytes_, bytes_ = 0;
  mutable std::mutex mu_;
  std::unordered_map<std::string, cv::Mat> map_;
  std::unordered_map<std::string, std::shared_future<cv::Mat>> inflight_;  // one decode per path at a time
  std::atomic<size_t> decodes_{0};
  VolumeCache volumes_;
};

// Decodes every path once (filling the cache) on `workers` threads. Returns, per bad file,
// "path: what is wrong"; an empty list means every image is usable.
std::vector<std::string> verify_images(const std::vector<std::string>& paths, ImageCache& cache, int workers);

struct LoaderOptions {
  int batch_size = 32;
  int workers = 2;
  bool augment = false;
  AugmentConfig aug;
  uint64_t seed = 0;
  int64_t epoch = 0;
  bool drop_last = false;
};

class BatchLoader {
 public:
  BatchLoader(const std::vector<Example>& examples, ImageCache& cache, LoaderOptions opt);
  ~BatchLoader();
  size_t batches() const { return batches_; }
  // Fills b with the next batch; false when the epoch is over. Prefetches the following one.
  bool next(Batch& b);
  Batch build(size_t batch_index) const;  // synchronous, for tests and benchmarks

 private:
  const std::vector<Example>& examples_;
  ImageCache& cache_;
  LoaderOptions opt_;
  size_t batches_ = 0, next_ = 0;
  std::future<Batch> pending_;
};

}  // namespace drifa::data
