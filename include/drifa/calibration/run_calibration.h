#pragma once
// `drifa calibrate RUN|ENSEMBLE`: fits the calibration of every predictive method on the run's
// validation split and stores it (calibration.json; for a single run also in best.safetensors).
#include <optional>
#include <string>

#include "drifa/calibration/calibration.h"
#include "drifa/uncertainty/study.h"

namespace drifa::calibration {

struct CalibrateOptions {
  uncertainty::StudyOptions study;  // passes, seed, batch size, device
  std::string part = "val";
  double alpha = 0.1;               // the default alpha of prediction sets
  Score score = Score::Lac;         // the default score of prediction sets
};

// Writes DIR/calibration.json and returns it. For a single run, the deterministic and mc fits
// are also written into best.safetensors's metadata (io::kCalibrationKey), so a model file
// copied elsewhere keeps its calibration.
Calibration calibrate_run(const std::string& dir, const CalibrateOptions& opt);

}  // namespace drifa::calibration
