#pragma once
// Predictions for new images with their uncertainty: `drifa predict`. Per case the images it has
// (an empty path: that modality was not given); every model (an ensemble, or one) runs its
// Monte Carlo passes; per task the class, the probabilities and the uncertainty measures of
// measures.h. A modality not given is, for an unpaired model (a partner bank is given),
// marginalised over K bank partners, and only the tasks of the given modalities are predicted;
// for a paired model it is absent (drifa_net.h) and every task is predicted.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "drifa/calibration/calibration.h"
#include "drifa/data/image.h"
#include "drifa/inputs/partners.h"
#include "drifa/model/drifa_net.h"
#include "drifa/uncertainty/mc_sampler.h"

namespace drifa::uncertainty {

struct PredictOptions {
  MCOptions mc;                // passes = 0: deterministic (Eval mode) only
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
};

// What predict needs, opened from a model file, a training run folder or an ensemble folder:
// the models, their calibration, and for unpaired models the partner bank (the run's, or for a
// bare model file the one of partners_from, a run folder).
struct Predictor {
  std::vector<DRIFANet> nets;
  std::optional<calibration::Calibration> calibration;
  std::optional<inputs::PartnerBank> bank;
  std::string pairing;  // "paired", "unpaired", or "unknown" (a model file saved before it was recorded)
};
Predictor open_predictor(const std::string& path, torch::Device device, const std::string& partners_from = "");

// cases: per case the M image paths in the models' modality order, "" where not given. Throws
// drifa::Error naming the case when it has the wrong number of entries, no image, or an image
// cannot be used.
nlohmann::json predict(std::vector<DRIFANet>& nets, const std::vector<std::vector<std::string>>& cases,
                       const PredictOptions& opt);

// Cases from a CSV with one column per modality (named as the model's modalities); relative
// paths are taken from the CSV's folder; an empty cell is a modality not given.
std::vector<std::vector<std::string>> read_cases_csv(const std::string& path, const ModelConfig& cfg);

}  // namespace drifa::uncertainty
