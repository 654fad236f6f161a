#pragma once
// The model behind `drifa serve`, without the HTTP: an upload per modality in, the JSON of
// `drifa predict` out. The model (a model file, a run or an ensemble, uncertainty::Predictor) is
// loaded once; requests are decoded and checked on the caller's thread, then batched
// (batcher.h) with the requests that arrive with them into one forward pass, Monte Carlo
// passes batched as `drifa uq` does. Every request is a single case with id 0, so its answer
// equals `drifa predict` of the same images with the same options (seed, passes, alpha, score),
// whatever it shares a batch with.
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "drifa/error.h"
#include "drifa/serve/batcher.h"
#include "drifa/serve/metrics.h"
#include "drifa/uncertainty/predict.h"

namespace drifa::serve {

// A refusal with the HTTP status it is answered with: 400 (the request is wrong), 401 (no or a
// wrong token), 413 (too large), 503 (queue full, timed out, stopping), 500 (the model failed).
class RequestError : public Error {
 public:
  RequestError(int status, const std::string& what) : Error(what), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

struct Upload {
  std::string field;     // the modality's name
  std::string filename;  // as the client called it: used in messages only, never opened
  std::string bytes;
};

struct PredictRequest {
  std::vector<Upload> files;  // the modalities given; the others are absent
  // Options, every one optional: passes, tta, seed, partners, gradcam, alpha, score, calibrated.
  std::vector<std::pair<std::string, std::string>> fields;
};

struct ServiceOptions {
  BatchOptions batch;
  double timeout_s = 60;   // per request, from its submission to its answer
  int passes = 30;         // Monte Carlo passes when a request does not say (0: deterministic)
  int max_passes = 100;    // a request asking for more is refused
  int views = 0;           // test-time augmentation views when a request does not say (0: off)
  uint64_t seed = 0;
  int64_t partners = inputs::kDefaultPartners;
  int64_t max_image_pixels = 16ll << 20;  // per uploaded image, checked from its header before decoding
  int64_t max_volume_voxels = settings::limits::kDefaultVolumeVoxels;  // per uploaded NIfTI volume, from its header
  data::DicomOptions dicom;
  torch::Device device = torch::kCPU;
};
// Refuses options out of their bounds, naming the setting (source: "command line", a file).
void check(const ServiceOptions& opt, const std::string& source);

class Service {
 public:
  Service(uncertainty::Predictor predictor, ServiceOptions opt);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Throws RequestError. Thread-safe: call it from as many threads as requests arrive on.
  nlohmann::json predict(const PredictRequest& request);
  // Modalities, tasks and classes, the configuration, calibration, ensemble size, defaults, limits.
  nlohmann::json model_info() const;
  Metrics& metrics() { return metrics_; }
  // Runs what is queued, then refuses (503) what comes later. Idempotent.
  void stop();

 private:
  struct Job;
  void run_batch(std::vector<Batcher::JobPtr>& batch);
  uncertainty::PredictOptions request_options(const PredictRequest& r, bool& gradcam) const;
  uncertainty::CaseImages request_images(const PredictRequest& r, bool keep_decoded) const;
  // A NIfTI upload for a volume modality (the model's drifa.volumes): its slices are submitted as
  // cases of their own and combine (mean) into "volumes", as drifa predict does.
  nlohmann::json predict_volume(const PredictRequest& r, const Upload& volume);
  std::future<nlohmann::json> submit(const std::shared_ptr<Job>& job);
  nlohmann::json wait(const std::shared_ptr<Job>& job, std::future<nlohmann::json>& answer);

  uncertainty::Predictor predictor_;
  ServiceOptions opt_;
  Metrics metrics_;
  Batcher batcher_;  // last: its worker stops before the model it uses goes away
};

}  // namespace drifa::serve
