#pragma once
// Predictions for new images with their uncertainty: `drifa predict`. Per case the images it has
// (an empty path: that modality was not given); every model (an ensemble, or one) runs its
// Monte Carlo passes; per task the class, the probabilities and the uncertainty measures of
// measures.h. A modality not given is, for an unpaired model (a partner bank is given),
// marginalised over K bank partners, and only the tasks of the given modalities are predicted;
// for a paired model it is absent (drifa_net.h) and every task is predicted.
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "drifa/calibration/calibration.h"
#include "drifa/data/image.h"
#include "drifa/data/loader.h"
#include "drifa/inputs/partners.h"
#include "drifa/model/drifa_net.h"
#include "drifa/inference/method.h"

namespace drifa::uncertainty {

struct PredictOptions {
  inference::MCOptions mc;                // passes = 0: deterministic (Eval mode) only
  // Test-time augmentation: views > 0 answers with tta (or, with passes, tta_mc: views x passes).
  inference::TTAOptions tta;
  // The method that answers for these models (inference::method_for of models, passes, views).
  const inference::PredictiveMethod& method(int64_t models) const {
    return inference::method_for({models, mc.passes, tta.views, tta.views > 0 && mc.passes > 0});
  }
  torch::Device device = torch::kCPU;
  data::DicomOptions dicom;
  std::string gradcam_dir;     // non-empty: a Grad-CAM overlay per case, task and modality goes here
  // When set: each task's probabilities are tempered and a conformal prediction set is given
  // (the method's fit for these models and passes; calibration::method_for).
  const calibration::Calibration* calibration = nullptr;
  double alpha = 0.1;
  calibration::Score score = calibration::Score::Lac;
  const inputs::PartnerBank* bank = nullptr;  // unpaired models: the run's partner bank
  int64_t partners = inputs::kDefaultPartners;
  // An unpaired model whose bank is not at hand (a bare model file): a case without every
  // modality is refused instead of being run with zeros.
  bool unpaired_without_bank = false;
  // Volume modalities' recipes (the model's drifa.volumes): a case whose entry for one of them is
  // a volume (.nii, .nii.gz, a DICOM series folder) is predicted slice by slice, and the slices'
  // answers combine by volume_aggregate (mean | max) into one per volume ("volumes" in the JSON).
  std::map<std::string, data::VolumeOptions> volumes;
  int64_t max_volume_voxels = settings::limits::kDefaultVolumeVoxels;
  std::string volume_aggregate = "mean";
};

// What predict needs, opened from a model file, a training run folder or an ensemble folder:
// the models, their calibration, and for unpaired models the partner bank (the run's, or for a
// bare model file the one of partners_from, a run folder).
struct Predictor {
  std::vector<DRIFANet> nets;
  std::optional<calibration::Calibration> calibration;
  std::optional<inputs::PartnerBank> bank;
  std::string pairing;  // "paired", "unpaired", or "unknown" (a model file saved before it was recorded)
  std::map<std::string, data::VolumeOptions> volumes;  // volume modalities' recipes (run config or model metadata)
  std::vector<std::string> tta_transforms;  // per modality (the run config's [tta]; a bare model file: hflip each)
};
Predictor open_predictor(const std::string& path, torch::Device device, const std::string& partners_from = "");

// One case's images, ready for the network: what predict is given, from files or (drifa serve)
// from uploaded bytes.
struct CaseImages {
  std::vector<std::string> names;     // per modality: the image's path or upload name, "" when not given
  std::vector<torch::Tensor> images;  // per modality [C, S, S] float32 in [0, 1]; undefined when not given
  std::vector<cv::Mat> decoded;       // per modality the decoded image, for Grad-CAM overlays (kept when asked)
  bool given(int64_t m) const { return images.at(static_cast<size_t>(m)).defined(); }
  std::vector<bool> pattern() const;  // given(m) for every m: cases that share it share a batch
};

// paths: the M image paths in the model's modality order, "" where not given. Throws drifa::Error
// naming `where` (e.g. "case 3") for the wrong number of entries, or the file that cannot be used.
CaseImages load_case(const std::vector<std::string>& paths, const ModelConfig& cfg, data::ImageCache& cache,
                     bool keep_decoded, const std::string& where);
// bytes[m]: modality m's file as uploaded ("" = not given), names[m] what messages call it.
CaseImages decode_case(const std::vector<std::string>& bytes, const std::vector<std::string>& names,
                       const ModelConfig& cfg, const data::ImageOptions& io, bool keep_decoded);

// Refuses a case the models cannot predict (no image; an unpaired model without its bank missing
// a modality), naming `where`.
void check_case(const CaseImages& c, const ModelConfig& cfg, const PredictOptions& opt, const std::string& where);

// Where a Grad-CAM overlay (8-bit BGR) of a case, task and modality goes; returns what the case's
// JSON says of it (drifa predict: the file written; drifa serve: a PNG data URI).
using OverlaySink = std::function<nlohmann::json(int64_t id, const std::string& task, const std::string& modality,
                                                 const cv::Mat& overlay)>;

// The one batch loop of prediction: cases that share a pattern of given modalities run as one
// batch through every model (deterministic pass or MC passes). ids[i] seeds case i's Monte Carlo
// masks and prediction-set draws, so a case gets the same answer alone or batched with others
// (drifa predict: its position in the list; drifa serve: 0, as a single `drifa predict` case).
// With a sink, each case's Grad-CAM overlays are made too. Returns each case's JSON, in order.
std::vector<nlohmann::json> predict_cases(std::vector<DRIFANet>& nets, const std::vector<const CaseImages*>& cases,
                                          const std::vector<int64_t>& ids, const PredictOptions& opt,
                                          const OverlaySink& sink = {});

// What surrounds the cases in predict's JSON: models, passes, calibration, the partner bank.
nlohmann::json predict_envelope(size_t models, const PredictOptions& opt, nlohmann::json cases);

// cases: per case the M image paths in the models' modality order, "" where not given. Throws
// drifa::Error naming the case when it has the wrong number of entries, no image, or an image
// cannot be used. Cases are predicted in batches of cases with the same modalities given.
nlohmann::json predict(std::vector<DRIFANet>& nets, const std::vector<std::vector<std::string>>& cases,
                       const PredictOptions& opt);
// The same over a cache the caller holds (its options decode the cases' paths); no volume expansion.
nlohmann::json predict(std::vector<DRIFANet>& nets, const std::vector<std::vector<std::string>>& cases,
                       const PredictOptions& opt, data::ImageCache* cache);

// Cases holding a volume, cut into one case per selected slice (the case's other entries repeated).
struct VolumeCases {
  struct Span {
    size_t case_index;            // the input case (0-based)
    std::string modality, volume;
    std::vector<int64_t> slices;  // the recipe's selected slice indices
    size_t first = 0;             // its first slice case in `cases`
  };
  std::vector<std::vector<std::string>> cases;
  std::vector<Span> spans;
};
VolumeCases expand_volume_cases(const std::vector<std::vector<std::string>>& cases, const ModelConfig& cfg,
                                const std::map<std::string, data::VolumeOptions>& recipes, int64_t max_voxels);
// Per volume: the combined answer (aggregate_cases over its slices), its slice cases, and the
// per-slice curve {task: {class: [probability per slice]}}.
nlohmann::json volume_answers(const nlohmann::json& cases, const VolumeCases& v, const std::string& how, const ModelConfig& cfg);

// Cases from a CSV with one column per modality (named as the model's modalities); relative
// paths are taken from the CSV's folder; an empty cell is a modality not given.
std::vector<std::vector<std::string>> read_cases_csv(const std::string& path, const ModelConfig& cfg);
// The cases' groups from that CSV's `column` (a patient, lesion or volume per row); an empty
// value or a missing column is an error naming the file.
std::vector<std::string> read_case_groups(const std::string& path, const std::string& column);

// One answer per group beside the per-case ones: per task, the group's cases' (tempered)
// probabilities combined by `how` (evaluation/aggregate.h: mean | max), its class and probability,
// and its case numbers. cases: predict's "cases"; groups: one per case. Tasks a case could not
// predict are left out of its group's answer.
nlohmann::json aggregate_cases(const nlohmann::json& cases, const std::vector<std::string>& groups, const std::string& how,
                               const ModelConfig& cfg);

}  // namespace drifa::uncertainty
