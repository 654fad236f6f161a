#pragma once
// `drifa calibrate RUN|ENSEMBLE`: fits the calibration of every predictive method on the run's
// validation split and stores it (calibration.json; for a single run also in best.safetensors).
#include <optional>
#include <string>

#include "drifa/calibration/calibration.h"
#include "drifa/uncertainty/study.h"

namespace drifa::uncertainty {

struct CalibrateOptions {
  StudyOptions study;               // passes, seed, batch size, device
  std::string part = "val";
  double alpha = 0.1;               // the default alpha of prediction sets
  calibration::Score score = calibration::Score::Lac;  // the default score of prediction sets
};

// Writes DIR/calibration.json and returns it. For a single run, the fits of one model's methods
// (PredictiveMethod::one_model) are also written into best.safetensors's metadata (runs::files::kCalibrationKey), so a model file
// copied elsewhere keeps its calibration.
calibration::Calibration calibrate_run(const std::string& dir, const CalibrateOptions& opt);

}  // namespace drifa::uncertainty
