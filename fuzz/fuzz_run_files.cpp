// Every run-folder reader: the first byte picks the file, the rest is its content.
#include "drifa/data/sources.h"
#include "drifa/io/config_file.h"
#include "drifa/runs/files.h"
#include "fuzz_common.h"

namespace rf = drifa::runs::files;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto dir = drifa::fuzz::scratch() / "run";
  const int which = data[0] % 14;
  static const char* names[] = {rf::kSplit,  rf::kMetrics, "uq/uq.json", "gradcam/gradcam.json", "tsne/tsne.json",
                                rf::kEnsemble, rf::kDone,  rf::kLogJson, rf::kLogCsv,           "uq/samples.csv",
                                rf::kCalibration, rf::kCv, rf::kCvMetrics, rf::kMissing};
  const auto file = dir / names[which];
  drifa::fuzz::write_file(file, data + 1, size - 1);
  const std::string d = dir.string();
  return drifa::fuzz::expect_clean([&] {
    switch (which) {
      case 0: drifa::data::PreparedData::from_json(drifa::io::read_json(file.string()), file.string()); break;
      case 1: rf::read_metrics(d); break;
      case 2: rf::read_uq(d); break;
      case 3: rf::read_gradcam(d); break;
      case 4: rf::read_tsne(d); break;
      case 5: rf::read_ensemble(d); break;
      case 6: rf::read_done(d); break;
      case 7: rf::read_log_json(d); break;
      case 8: rf::read_log_csv(d); break;
      case 10: rf::read_calibration(d); break;
      case 11: rf::read_cv(d); break;
      case 12: rf::read_cv_metrics(d); break;
      case 13: rf::read_missing(d); break;
      default: rf::read_uq_samples(file.string()); break;
    }
  });
}
