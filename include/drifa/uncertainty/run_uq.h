#pragma once
// `drifa uq DIR`: the uncertainty study of an ensemble (or one run) on a split, calibrated when
// the folder holds calibration.json; writes uq/uq.json and uq/samples.csv. "inputs" says what the
// network was given (every modality, some absent, or partners).
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "drifa/uncertainty/study.h"

namespace drifa::uncertainty {

struct UqOptions {
  StudyOptions study;
  std::string part = "test";
  std::string out;          // default DIR/uq
  bool calibrated = true;   // false: the raw probabilities (--no-calibration)
  std::vector<double> alphas = {0.1, 0.05};
  evaluation::BootstrapOptions ci;
  int64_t partners = 0;              // unpaired: > 0 marginalises over this many bank partners
  std::vector<std::string> missing;  // modality names left out (absent for every case)
};

// Returns uq.json's content; "warnings" lists mismatches with the calibration (passes, models).
nlohmann::json run_uq(const std::string& dir, const UqOptions& opt);

}  // namespace drifa::uncertainty
