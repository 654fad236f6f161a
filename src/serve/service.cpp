#include "drifa/serve/service.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>

#include <opencv2/imgcodecs.hpp>
#include <torch/torch.h>

#include "drifa/calibration/calibration.h"
#include "drifa/data/transforms.h"
#include "drifa/data/volume.h"
#include "drifa/data/volume_slices.h"
#include "drifa/io/base64.h"
#include "drifa/io/settings.h"

namespace fs = std::filesystem;

namespace drifa::serve {

namespace {

using Clock = std::chrono::steady_clock;

// Text from a client as messages show it: printable ASCII only, at most 80 characters.
std::string printable(const std::string& text) {
  std::string clean;
  for (unsigned char c : text)
    if (c >= 0x20 && c < 0x7f && c != '"') clean += static_cast<char>(c);
  return clean.size() > 80 ? clean.substr(clean.size() - 80) : clean;
}

// What messages call an upload: the modality and the client's file name without any folder part
// (the name is the client's, never a path here), e.g. "derm=lesion.png".
std::string upload_name(const Upload& u) {
  const std::string base = printable(u.filename.substr(u.filename.find_last_of("/\\") + 1));
  return printable(u.field) + "=" + (base.empty() ? "upload" : base);
}

// A form field's text as a setting: numbers and true/false as such, anything else a string.
nlohmann::json field_value(const std::string& text) {
  auto v = nlohmann::json::parse(text, nullptr, false);
  if (!v.is_discarded() && (v.is_number() || v.is_boolean())) return v;
  return text;
}

std::string png_data_uri(const cv::Mat& bgr) {
  std::vector<uchar> buf;
  if (!cv::imencode(".png", bgr, buf)) throw Error("serve: cannot encode a Grad-CAM overlay as PNG");
  return "data:image/png;base64," + io::base64(std::string(buf.begin(), buf.end()));
}

}  // namespace

void check(const ServiceOptions& opt, const std::string& source) {
  settings::check_integer(source, "max_batch", opt.batch.max_batch, settings::limits::kMaxBatch);
  settings::check_integer(source, "max_wait_ms", opt.batch.max_wait_ms, settings::limits::kMaxWaitMs);
  settings::check_integer(source, "queue", opt.batch.queue, settings::limits::kQueue);
  settings::check_real(source, "timeout", opt.timeout_s, settings::limits::kRequestTimeout);
  settings::check_integer(source, "max_passes", opt.max_passes, settings::limits::kPasses);
  settings::check_integer(source, "passes", opt.passes, {0, opt.max_passes});
  settings::check_integer(source, "tta", opt.views, settings::limits::kViews);
  settings::check_integer(source, "partners", opt.partners, settings::limits::kPartners);
  settings::check_integer(source, "max_image_pixels", opt.max_image_pixels, settings::limits::kImagePixels);
}

struct Service::Job : Batcher::Job {
  uncertainty::CaseImages images;
  uncertainty::PredictOptions options;
  bool gradcam = false;
  Clock::time_point deadline;
  std::promise<nlohmann::json> answer;
};

Service::Service(uncertainty::Predictor predictor, ServiceOptions opt)
    : predictor_(std::move(predictor)),
      opt_(opt),
      batcher_(opt.batch, [this](std::vector<Batcher::JobPtr>& b) { run_batch(b); },
               [this](int64_t n) { metrics_.queue_depth(n); }) {
  check(opt_, "serve options");
  if (predictor_.nets.empty()) throw Error("serve: no model");
}

Service::~Service() { stop(); }

void Service::stop() { batcher_.stop(); }

uncertainty::PredictOptions Service::request_options(const PredictRequest& r, bool& gradcam) const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, text] : r.fields) {
    if (j.contains(key)) throw RequestError(400, "request: " + key + ": given twice");
    j[key] = field_value(text);
  }
  settings::Table t(j, "request");
  uncertainty::PredictOptions po;
  po.device = opt_.device;
  po.dicom = opt_.dicom;
  po.mc.passes = static_cast<int>(t.integer("passes", opt_.passes, {0, opt_.max_passes}));
  po.tta.views = t.integer("tta", opt_.views, settings::limits::kViews);
  po.tta.transforms = predictor_.tta_transforms;
  po.mc.seed = static_cast<uint64_t>(t.integer("seed", static_cast<int64_t>(opt_.seed), settings::limits::kSeed));
  po.partners = t.integer("partners", opt_.partners, settings::limits::kPartners);
  gradcam = t.boolean("gradcam", false);
  const bool calibrated = t.boolean("calibrated", true);
  if (predictor_.calibration && calibrated) {
    po.calibration = &*predictor_.calibration;
    po.alpha = t.real("alpha", predictor_.calibration->alpha, settings::limits::kAlpha);
    po.score = calibration::parse_score(t.choice("score", calibration::score_name(predictor_.calibration->score),
                                                 {"lac", "aps", "aps_randomized"}),
                                        "request: score");
  } else if (t.has("alpha") || t.has("score")) {
    t.fail(t.has("alpha") ? "alpha" : "score", predictor_.calibration ? "no prediction sets with calibrated=false"
                                                                      : "no prediction sets: the model has no calibration (drifa calibrate)");
  }
  t.finish();
  po.bank = predictor_.bank ? &*predictor_.bank : nullptr;
  po.unpaired_without_bank = predictor_.pairing == "unpaired" && !predictor_.bank;
  return po;
}

uncertainty::CaseImages Service::request_images(const PredictRequest& r, bool keep_decoded) const {
  const auto& cfg = predictor_.nets[0]->config();
  std::vector<std::string> bytes(static_cast<size_t>(cfg.modalities)), names(bytes.size());
  std::string known;
  for (int64_t m = 0; m < cfg.modalities; ++m) known += (m ? ", " : "") + cfg.modality_name(m);
  for (const auto& u : r.files) {
    int64_t m = 0;
    while (m < cfg.modalities && cfg.modality_name(m) != u.field) ++m;
    if (m == cfg.modalities)
      throw RequestError(400, "request: file field '" + printable(u.field) + "': not a modality of the model (" + known + ")");
    if (!names[static_cast<size_t>(m)].empty()) throw RequestError(400, "request: two files for " + printable(u.field));
    names[static_cast<size_t>(m)] = upload_name(u);
    if (u.bytes.empty()) throw RequestError(400, names[static_cast<size_t>(m)] + ": empty file");
    bytes[static_cast<size_t>(m)] = u.bytes;
  }
  if (r.files.empty())
    throw RequestError(400, "request: no image; send one file per modality, each in a form field named as the modality (" +
                                known + ")");
  data::ImageOptions io;
  io.size = static_cast<int>(cfg.image_size);
  io.channels = static_cast<int>(cfg.in_channels);
  io.dicom = opt_.dicom;
  io.max_pixels = opt_.max_image_pixels;
  return uncertainty::decode_case(bytes, names, cfg, io, keep_decoded);
}

std::future<nlohmann::json> Service::submit(const std::shared_ptr<Job>& job) {
  // Jobs that can share a batch: the same modalities given and the same options.
  std::string key;
  for (bool g : job->images.pattern()) key += g ? '1' : '0';
  key += "|" + std::to_string(job->options.mc.passes) + "|" + std::to_string(job->options.tta.views) + "|" +
         std::to_string(job->options.mc.seed) + "|" +
         std::to_string(job->options.partners) + "|" + std::to_string(job->gradcam) + "|" +
         std::to_string(job->options.calibration != nullptr) + "|" + std::to_string(job->options.alpha) + "|" +
         calibration::score_name(job->options.score);
  job->key = key;
  job->deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt_.timeout_s));
  auto answer = job->answer.get_future();
  if (!batcher_.submit(job))
    throw RequestError(503, "the server is busy: " + std::to_string(opt_.batch.queue) +
                                " requests are already waiting (--queue); retry later");
  return answer;
}

nlohmann::json Service::wait(const std::shared_ptr<Job>& job, std::future<nlohmann::json>& answer) {
  if (answer.wait_until(job->deadline) != std::future_status::ready)
    throw RequestError(503, "no answer within " + settings::show(opt_.timeout_s) + " s (--timeout); the server is overloaded");
  try {
    return answer.get();
  } catch (const RequestError&) {
    throw;
  } catch (const std::exception& e) {
    throw RequestError(500, std::string("the model failed on this request: ") + e.what());
  }
}

nlohmann::json Service::predict(const PredictRequest& r) {
  for (const auto& u : r.files)
    if (predictor_.volumes.count(u.field)) return predict_volume(r, u);
  const auto& cfg = predictor_.nets[0]->config();
  auto job = std::make_shared<Job>();
  try {
    job->options = request_options(r, job->gradcam);
    job->images = request_images(r, job->gradcam);
    uncertainty::check_case(job->images, cfg, job->options, "request");
  } catch (const RequestError&) {
    throw;
  } catch (const Error& e) {
    throw RequestError(400, e.what());
  }
  auto answer = submit(job);
  return wait(job, answer);
}

namespace {
// An uploaded volume as a file for ITK, removed when the request is done.
struct TempVolume {
  std::string path;
  explicit TempVolume(const std::string& bytes) {
    static std::atomic<uint64_t> counter{0};
    const bool gz = bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f && static_cast<unsigned char>(bytes[1]) == 0x8b;
    path = (fs::temp_directory_path() / ("drifa-serve-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) +
                                         (gz ? ".nii.gz" : ".nii"))).string();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw RequestError(500, "cannot store the uploaded volume for reading");
  }
  ~TempVolume() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};
}  // namespace

nlohmann::json Service::predict_volume(const PredictRequest& r, const Upload& volume) {
  const auto& cfg = predictor_.nets[0]->config();
  const auto& recipe = predictor_.volumes.at(volume.field);
  const std::string name = upload_name(volume);
  uncertainty::PredictOptions options;
  bool gradcam = false;
  uncertainty::CaseImages base;
  std::vector<int64_t> slices;
  std::vector<cv::Mat> inputs;
  int64_t m = 0;
  while (cfg.modality_name(m) != volume.field) ++m;
  try {
    options = request_options(r, gradcam);
    if (gradcam) throw RequestError(400, name + ": Grad-CAM overlays are not drawn for volume uploads; use drifa predict --gradcam");
    PredictRequest rest = r;
    rest.files.erase(std::remove_if(rest.files.begin(), rest.files.end(), [&](const Upload& u) { return u.field == volume.field; }),
                     rest.files.end());
    if (rest.files.empty()) {
      base.names.assign(size_t(cfg.modalities), "");
      base.images.resize(size_t(cfg.modalities));
      base.decoded.resize(size_t(cfg.modalities));
    } else {
      base = request_images(rest, false);
    }
    if (volume.bytes.empty()) throw RequestError(400, name + ": empty file");
    if (recipe.slices == "mask") throw RequestError(400, name + ": the model's recipe selects slices by a mask, which an upload has not");
    TempVolume file(volume.bytes);
    data::Volume v;
    try {
      v = data::read_normalised(file.path, recipe, opt_.max_volume_voxels);
    } catch (const Error& e) {  // messages name the temporary file: name the upload instead
      std::string what = e.what();
      for (auto at = what.find(file.path); at != std::string::npos; at = what.find(file.path, at + name.size()))
        what.replace(at, file.path.size(), name);
      throw RequestError(400, what);
    }
    slices = data::select_slices(v.info, recipe, nullptr, name);
    for (int64_t k : slices)
      inputs.push_back(data::preprocess(data::extract_slice(v, recipe, k, name), int(cfg.image_size), int(cfg.in_channels), 1, name));
  } catch (const RequestError&) {
    throw;
  } catch (const Error& e) {
    throw RequestError(400, e.what());
  }
  // The slices go through the batcher as cases of their own, a batch's worth at a time.
  const size_t wave = size_t(std::max(1, std::min(opt_.batch.max_batch, opt_.batch.queue)));
  nlohmann::json cases = nlohmann::json::array(), envelope;
  for (size_t first = 0; first < inputs.size(); first += wave) {
    std::vector<std::shared_ptr<Job>> jobs;
    std::vector<std::future<nlohmann::json>> answers;
    for (size_t i = first; i < std::min(inputs.size(), first + wave); ++i) {
      auto job = std::make_shared<Job>();
      job->options = options;
      job->images = base;
      job->images.names[size_t(m)] = name + " slice " + std::to_string(slices[i]);
      job->images.images[size_t(m)] = data::to_tensor(inputs[i]);
      if (i == 0) uncertainty::check_case(job->images, cfg, job->options, "request");
      answers.push_back(submit(job));
      jobs.push_back(job);
    }
    for (size_t i = 0; i < jobs.size(); ++i) {
      auto j = wait(jobs[i], answers[i]);
      auto c = j["cases"][0];
      c["case"] = first + i + 1;
      cases.push_back(std::move(c));
      if (envelope.is_null()) envelope = std::move(j);
    }
  }
  uncertainty::VolumeCases vc;
  vc.spans.push_back({0, volume.field, name, slices, 0});
  envelope["cases"] = cases;
  envelope["volumes"] = uncertainty::volume_answers(cases, vc, "mean", cfg);
  return envelope;
}

void Service::run_batch(std::vector<Batcher::JobPtr>& batch) {
  const auto t0 = Clock::now();
  std::vector<Job*> jobs;
  for (auto& b : batch) {
    auto* j = static_cast<Job*>(b.get());
    if (t0 > j->deadline)  // its client has had its 503 already
      j->answer.set_exception(std::make_exception_ptr(RequestError(503, "timed out in the queue")));
    else
      jobs.push_back(j);
  }
  if (jobs.empty()) return;
  try {
    std::vector<const uncertainty::CaseImages*> cases;
    for (auto* j : jobs) cases.push_back(&j->images);
    uncertainty::OverlaySink sink;
    if (jobs[0]->gradcam)
      sink = [](int64_t, const std::string&, const std::string&, const cv::Mat& overlay) { return nlohmann::json(png_data_uri(overlay)); };
    auto answers = uncertainty::predict_cases(predictor_.nets, cases, std::vector<int64_t>(jobs.size(), 0), jobs[0]->options, sink);
    metrics_.batch(static_cast<int64_t>(jobs.size()), std::chrono::duration<double>(Clock::now() - t0).count());
    for (size_t i = 0; i < jobs.size(); ++i) {
      auto j = uncertainty::predict_envelope(predictor_.nets.size(), jobs[i]->options, nlohmann::json::array({std::move(answers[i])}));
      j["pairing"] = predictor_.pairing;
      jobs[i]->answer.set_value(std::move(j));
    }
  } catch (...) {
    for (auto* j : jobs) j->answer.set_exception(std::current_exception());
  }
}

nlohmann::json Service::model_info() const {
  const auto& cfg = predictor_.nets[0]->config();
  nlohmann::json mods = nlohmann::json::array(), tasks = nlohmann::json::array();
  for (int64_t m = 0; m < cfg.modalities; ++m) mods.push_back(cfg.modality_name(m));
  for (int64_t t = 0; t < cfg.tasks(); ++t) tasks.push_back({{"name", cfg.task_name(t)}, {"classes", cfg.task_class_names(t)}});
  nlohmann::json cal = nullptr;
  if (predictor_.calibration) {
    const auto& c = *predictor_.calibration;
    cal = {{"part", c.part}, {"models", c.models}, {"passes", c.passes}, {"alpha", c.alpha},
           {"score", calibration::score_name(c.score)}, {"temperatures", nlohmann::json::object()}};
    for (const auto& [task, methods] : c.tasks)
      for (const auto& [method, fit] : methods) cal["temperatures"][task][method] = fit.temperature;
  }
  const bool missing_ok = predictor_.pairing == "paired" || predictor_.bank.has_value();
  nlohmann::json defaults = {{"passes", opt_.passes}, {"seed", opt_.seed}, {"partners", opt_.partners}};
  if (opt_.views > 0) defaults["tta"] = opt_.views;  // test-time augmentation
  return {{"modalities", mods},
          {"tasks", tasks},
          {"pairing", predictor_.pairing},
          {"models", predictor_.nets.size()},
          {"missing_modalities", missing_ok},
          {"configuration", cfg.to_json()},
          {"calibration", cal},
          {"partner_bank", predictor_.bank ? nlohmann::json({{"size", predictor_.bank->size()}, {"seed", predictor_.bank->seed}})
                                           : nlohmann::json(nullptr)},
          {"defaults", defaults},
          {"limits", {{"max_passes", opt_.max_passes}, {"max_batch", opt_.batch.max_batch}, {"max_wait_ms", opt_.batch.max_wait_ms},
                      {"queue", opt_.batch.queue}, {"timeout_s", opt_.timeout_s}, {"max_image_pixels", opt_.max_image_pixels}}}};
}

}  // namespace drifa::serve
