#include "drifa/data/loader.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include <torch/torch.h>

#include "drifa/data/split.h"
#include "drifa/error.h"

namespace drifa::data {

cv::Mat decode_input(const std::string& path, const ImageOptions& opt, VolumeCache* volumes) {
  if (!opt.volumes.empty())
    if (auto ref = parse_slice_ref(path); ref && opt.volumes.count(ref->modality))
      return decode_slice(*ref, opt.volumes, opt.max_volume_voxels, volumes);
  return decode_image(path, opt.dicom, opt.max_pixels);
}

cv::Mat decode_for_display(const std::string& path, const ImageOptions& opt) {
  cv::Mat m = decode_input(path, opt);
  const auto ref = parse_slice_ref(path);
  if (!ref || !opt.volumes.count(ref->modality) || m.channels() == 1) return m;
  cv::Mat centre;
  cv::extractChannel(m, centre, m.channels() / 2);
  return centre;
}

cv::Mat ImageCache::get(const std::string& path) {
  std::promise<cv::Mat> promise;
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = map_.find(path);
    if (it != map_.end()) return it->second;
    auto fl = inflight_.find(path);
    if (fl != inflight_.end()) {
      auto fut = fl->second;
      lock.unlock();
      return fut.get();  // another worker is decoding this file
    }
    inflight_.emplace(path, promise.get_future().share());
  }
  cv::Mat img;
  try {
    img = preprocess(decode_input(path, opt_, &volumes_), opt_.size, opt_.channels, opt_.min_side, path);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mu_);
    promise.set_exception(std::current_exception());
    inflight_.erase(path);
    throw;
  }
  ++decodes_;
  std::lock_guard<std::mutex> lock(mu_);
  const size_t bytes = img.total() * img.elemSize();
  if (bytes_ + bytes <= max_bytes_) {
    map_.emplace(path, img);
    bytes_ += bytes;
  }
  promise.set_value(img);
  inflight_.erase(path);
  return img;
}

size_t ImageCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return map_.size();
}

namespace {
// Runs f(i) for i in [0, n) on `workers` threads.
void parallel(size_t n, int workers, const std::function<void(size_t)>& f) {
  const int w = std::max(1, std::min<int>(workers, static_cast<int>(n)));
  if (w == 1) {
    for (size_t i = 0; i < n; ++i) f(i);
    return;
  }
  std::atomic<size_t> next{0};
  std::vector<std::thread> ts;
  std::exception_ptr err;
  std::mutex err_mu;
  for (int t = 0; t < w; ++t)
    ts.emplace_back([&] {
      for (size_t i = next++; i < n; i = next++) {
        try {
          f(i);
        } catch (...) {
          std::lock_guard<std::mutex> l(err_mu);
          if (!err) err = std::current_exception();
        }
      }
    });
  for (auto& t : ts) t.join();
  if (err) std::rethrow_exception(err);
}
}  // namespace

std::vector<std::string> verify_images(const std::vector<std::string>& paths, ImageCache& cache, int workers) {
  std::vector<std::string> errors(paths.size());
  parallel(paths.size(), workers, [&](size_t i) {
    try {
      cache.get(paths[i]);
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  });
  errors.erase(std::remove(errors.begin(), errors.end(), std::string()), errors.end());
  return errors;
}

BatchLoader::BatchLoader(const std::vector<Example>& examples, ImageCache& cache, LoaderOptions opt)
    : examples_(examples), cache_(cache), opt_(opt) {
  if (opt_.batch_size < 1) throw Error("batch size must be >= 1");
  // The loader parallelises over images itself. OpenCV's own threading splits warpAffine into
  // stripes whose count depends on the calling thread, which changes results in the last bits;
  // turning it off keeps augmentation identical whatever the number of workers.
  cv::setNumThreads(0);
  batches_ = opt_.drop_last ? examples_.size() / opt_.batch_size
                            : (examples_.size() + opt_.batch_size - 1) / opt_.batch_size;
}

BatchLoader::~BatchLoader() {
  if (pending_.valid()) pending_.wait();
}

Batch BatchLoader::build(size_t bi) const {
  const size_t begin = bi * opt_.batch_size, end = std::min(examples_.size(), begin + opt_.batch_size);
  const size_t B = end - begin;
  const size_t M = examples_[begin].paths.size(), T = examples_[begin].labels.size();
  const auto& io = cache_.options();
  Batch b;
  for (size_t m = 0; m < M; ++m) b.inputs.push_back(torch::empty({int64_t(B), io.channels, io.size, io.size}));
  for (size_t t = 0; t < T; ++t) b.labels.push_back(torch::empty({int64_t(B)}, torch::kLong));
  parallel(B * M, opt_.workers, [&](size_t k) {
    const size_t i = k / M, m = k % M, idx = begin + i;
    cv::Mat img = cache_.get(examples_[idx].paths[m]);
    if (opt_.augment) {
      std::mt19937_64 rng(mix_seed(opt_.seed, static_cast<uint64_t>(opt_.epoch), idx, m));
      img = augment(img, opt_.aug, rng);
    }
    b.inputs[m][static_cast<int64_t>(i)].copy_(to_tensor(img));
  });
  for (size_t i = 0; i < B; ++i) {
    b.indices.push_back(begin + i);
    for (size_t t = 0; t < T; ++t) b.labels[t][static_cast<int64_t>(i)] = examples_[begin + i].labels[t];
  }
  return b;
}

bool BatchLoader::next(Batch& b) {
  if (next_ >= batches_) return false;
  b = pending_.valid() ? pending_.get() : build(next_);
  ++next_;
  if (next_ < batches_) pending_ = std::async(std::launch::async, [this, i = next_] { return build(i); });
  return true;
}

}  // namespace drifa::data
