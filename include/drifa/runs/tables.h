#pragma once
// The per-(sample, task) tables of a run folder: predictions.csv (drifa train / evaluate / cv) and
// uq/samples.csv (drifa uq). One layout: sample, task, path_<modality>..., the table's own
// columns, then prob_k, the probability of class index k of the row's task (class names:
// metrics.json). Column names: keys.h.
#include <ostream>
#include <string>
#include <vector>

#include "drifa/data/loader.h"
#include "drifa/evaluation/evaluator.h"
#include "drifa/model/config.h"
#include "drifa/runs/keys.h"

namespace drifa::runs::files {

std::string sample_csv_header(const ModelConfig& cfg, const std::vector<std::string>& columns);
// columns: the row's own cells, already CSV-escaped and comma-joined, in the header's order.
void sample_csv_row(std::ostream& o, const ModelConfig& cfg, int64_t sample, int64_t task, const data::Example& ex,
                    const std::string& columns, const float* probs, int64_t classes);

// predictions.csv: one row per scored (sample, task), its group beside the labels.
void write_predictions(const std::string& path, const evaluation::EvalResult& r, const std::vector<data::Example>& examples,
                       const ModelConfig& cfg);

}  // namespace drifa::runs::files
