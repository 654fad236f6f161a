#pragma once
// Every file of a run folder, an ensemble folder and their analysis sub-folders (named once, in
// keys.h) and the one checked reader for each. A reader checks schema, types, ranges and agreement with the
// other files (classes vs modalities, rows vs columns, labels within their class lists), and
// throws drifa::Error "FILE: KEY: found .., allowed .." otherwise. A path read from a run file
// must stay inside the folder it belongs to. Nothing else opens these files by hand.
//
//   RUN/config.json             the run configuration (RunConfig)          writer: training::train
//   RUN/split.json              the data split and its groups (PreparedData) writer: training::train
//   RUN/checkpoint.safetensors  model + Adam + trainer counters             writer: save_checkpoint
//   RUN/best.safetensors        the model of the best validation loss      writer: runs::save_model
//   RUN/partners.safetensors    unpaired: the partner bank (inputs/partners) writer: training::train
//   RUN/missing.json            metrics with modalities missing             writer: evaluate_run
//   RUN/log.json, RUN/log.csv   one row per epoch                           writer: training::train
//   RUN/done.json               training finished (best epoch and loss)     writer: training::train
//   RUN/tuning.json             precision auto: the speed settings timed     writer: training::train
//   RUN/metrics.json            per-task test metrics                       writer: evaluate_run
//   RUN/predictions.csv         per (sample, task) predictions and group    writer: evaluate_run
//   ENS/ensemble.json           the members of an ensemble                  writer: train_ensemble
//   DIR/uq/uq.json, samples.csv the uncertainty study                       writer: drifa uq
//   DIR/gradcam/gradcam.json    Grad-CAM overlays and lesion scores         writer: gradcam_run
//   DIR/tsne/tsne.json          t-SNE embeddings                            writer: tsne_run
//   DIR/report.html             the report                                  writer: write_report
//   FOLDER/.drifa.lock          the one writer's lock and its pid, command  io::FolderLock (io/folder_lock.h)
//   FOLDER/NAME.tmp.PID         a file being written (renamed over NAME)    io::atomic_write
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "drifa/calibration/calibration.h"
#include "drifa/runs/keys.h"

namespace drifa::runs::files {

// dir/name (name may hold one sub-folder, "uq/uq.json").
std::string path(const std::string& dir, const std::string& name);
std::string path(const std::string& dir, const std::string& sub, const std::string& name);

// A relative path named in a run file (source, key), resolved against dir. Refuses absolute paths,
// "..", and anything (symbolic links included) that leads outside dir.
std::string inside(const std::string& dir, const std::string& rel, const std::string& source, const std::string& key);

// ---- readers ---------------------------------------------------------------

// done.json
struct Done {
  int64_t best_epoch = 0;
  double best_val_loss = 0;
};
Done read_done(const std::string& run_dir);

// ensemble.json: the configuration and the member folder names (plain names inside the folder).
struct EnsembleManifest {
  nlohmann::json config;
  std::vector<std::string> members;
};
EnsembleManifest read_ensemble(const std::string& dir);

// cv.json: the configuration, the number of folds and the fold folder names (plain names).
struct CvManifest {
  nlohmann::json config;
  int64_t folds = 0;
  std::vector<std::string> members;
};
CvManifest read_cv(const std::string& dir);
// cv_metrics.json (report): per task the folds' metrics, mean and sd, pooled and held-out, in [0, 1] or null.
nlohmann::json read_cv_metrics(const std::string& dir);

// log.json (resume): a list of objects with an integer "epoch" each, in increasing order.
nlohmann::json read_log_json(const std::string& run_dir);

// log.csv (report): epoch, train_loss, val_loss and val_acc_<task> columns. Empty cells and
// "null" (a value that was not a number) read as NaN; anything else must be a finite number.
struct LogTable {
  std::vector<std::string> acc_tasks;  // the <task> of each val_acc_<task> column
  std::vector<double> epoch, train_loss, val_loss;
  std::vector<std::vector<double>> val_acc;  // [column][row]
};
LogTable read_log_csv(const std::string& run_dir);

// metrics.json, checked against itself: every task has a class list (>= 2 names), a square
// confusion matrix of that size with non-negative counts, metrics in [0, 1] or null.
nlohmann::json read_metrics(const std::string& run_dir);

// missing.json (evaluate --missing): per pattern its name and, per task, metrics in [0, 1] or
// null, or {"scored": false, "reason"}; nullopt when the folder has none.
std::optional<nlohmann::json> read_missing(const std::string& run_dir);

// calibration.json (drifa calibrate), validated; nullopt when the folder has none.
std::optional<calibration::Calibration> read_calibration(const std::string& dir);
// A model file's own calibration (its metadata key kCalibrationKey, model_file.h), or nullopt.
std::optional<calibration::Calibration> read_model_calibration(const io::Metadata& metadata, const std::string& source);

// uq/uq.json: models, passes, per task and method the measures the report shows.
nlohmann::json read_uq(const std::string& dir);

// uq/samples.csv: the per-sample uncertainty measures (finite, non-negative).
struct UqSample {
  int64_t sample;
  std::string task;
  bool correct;
  double predictive_entropy, mutual_information;
};
std::vector<UqSample> read_uq_samples(const std::string& csv_path);

// gradcam/gradcam.json; every "image" lies inside gradcam/ (returned resolved).
nlohmann::json read_gradcam(const std::string& dir);
// tsne/tsne.json; every "png" lies inside tsne/ (returned resolved).
nlohmann::json read_tsne(const std::string& dir);

}  // namespace drifa::runs::files
