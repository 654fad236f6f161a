#include "drifa/runs/tables.h"

#include <algorithm>
#include <sstream>

#include <torch/torch.h>

#include "drifa/data/csv.h"
#include "drifa/io/atomic_file.h"

namespace drifa::runs::files {

std::string sample_csv_header(const ModelConfig& cfg, const std::vector<std::string>& columns) {
  std::ostringstream o;
  o << kColSample << "," << kColTask;
  for (int64_t m = 0; m < cfg.modalities; ++m) o << "," << data::csv_escape(kColPathPrefix + cfg.modality_name(m));
  for (const auto& c : columns) o << "," << c;
  const int64_t kmax = *std::max_element(cfg.classes.begin(), cfg.classes.end());
  for (int64_t k = 0; k < kmax; ++k) o << "," << kColProbPrefix << k;
  o << "\n";
  return o.str();
}

void sample_csv_row(std::ostream& o, const ModelConfig& cfg, int64_t sample, int64_t task, const data::Example& ex,
                    const std::string& columns, const float* probs, int64_t classes) {
  o << sample << "," << data::csv_escape(cfg.task_name(task));
  for (const auto& path : ex.paths) o << "," << data::csv_escape(path);
  o << "," << columns;
  const int64_t kmax = *std::max_element(cfg.classes.begin(), cfg.classes.end());
  for (int64_t k = 0; k < kmax; ++k) {
    o << ",";
    if (k < classes) o << probs[k];
  }
  o << "\n";
}

void write_predictions(const std::string& path, const evaluation::EvalResult& r, const std::vector<data::Example>& examples,
                       const ModelConfig& cfg) {
  std::ostringstream o;
  o << sample_csv_header(cfg, {kColGroup, kColTrueLabel, kColPredictedLabel});
  for (size_t t = 0; t < r.probs.size(); ++t) {
    auto y = r.labels[t].accessor<int64_t, 1>();
    const auto p = r.probs[t].contiguous();
    const int64_t K = p.size(1);
    for (int64_t i = 0; i < p.size(0); ++i) {
      if (y[i] < 0) continue;
      const float* row = p.data_ptr<float>() + i * K;
      const int64_t best = std::max_element(row, row + K) - row;  // the first maximum, as before
      const auto ti = static_cast<int64_t>(t);
      const auto& ex = examples[static_cast<size_t>(i)];
      sample_csv_row(o, cfg, i, ti, ex,
                     data::csv_escape(ex.group) + "," + data::csv_escape(cfg.class_name(ti, y[i])) + "," +
                         data::csv_escape(cfg.class_name(ti, best)),
                     row, K);
    }
  }
  io::atomic_write_text(path, o.str());
}

}  // namespace drifa::runs::files
