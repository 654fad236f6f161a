#pragma once
// Predictions for new images with their uncertainty: `drifa predict`. One image per modality
// per case; every model (an ensemble, or one) runs its Monte Carlo passes; per task the class,
// the probabilities and the uncertainty measures of measures.h.
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "drifa/calibration/calibration.h"
#include "drifa/data/image.h"
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
};

// cases: per case the M image paths in the models' modality order. Throws drifa::Error naming
// the case when it has the wrong number of images or an image cannot be used.
nlohmann::json predict(std::vector<DRIFANet>& nets, const std::vector<std::vector<std::string>>& cases,
                       const PredictOptions& opt);

// Cases from a CSV with one column per modality (named as the model's modalities); relative
// paths are taken from the CSV's folder.
std::vector<std::vector<std::string>> read_cases_csv(const std::string& path, const ModelConfig& cfg);

}  // namespace drifa::uncertainty
