#pragma once
// The one table of the run folder's names (llama.cpp's llama-arch.h): every file name, model-file
// metadata key and column of the per-sample tables, said once. Writers and readers both take
// them from here, so a renamed column cannot leave its reader behind.
namespace drifa::runs::files {

// ---- files (what each holds, who writes it: files.h) ------------------------
inline constexpr const char* kConfig = "config.json";
inline constexpr const char* kSplit = "split.json";
inline constexpr const char* kCheckpoint = "checkpoint.safetensors";
inline constexpr const char* kBestModel = "best.safetensors";
inline constexpr const char* kLogJson = "log.json";
inline constexpr const char* kLogCsv = "log.csv";
inline constexpr const char* kDone = "done.json";
inline constexpr const char* kTuning = "tuning.json";  // run folder: the speed settings timed (training/tuning.h)
inline constexpr const char* kMetrics = "metrics.json";
inline constexpr const char* kPredictions = "predictions.csv";
inline constexpr const char* kEnsemble = "ensemble.json";
inline constexpr const char* kCalibration = "calibration.json";  // run or ensemble folder
inline constexpr const char* kCv = "cv.json";                    // cross-validation folder
inline constexpr const char* kPartners = "partners.safetensors";  // unpaired run folder
inline constexpr const char* kMissing = "missing.json";          // run folder
inline constexpr const char* kUqDir = "uq";
inline constexpr const char* kUq = "uq.json";             // in kUqDir
inline constexpr const char* kUqSamples = "samples.csv";  // in kUqDir
inline constexpr const char* kGradcamDir = "gradcam";
inline constexpr const char* kGradcam = "gradcam.json";   // in kGradcamDir
inline constexpr const char* kTsneDir = "tsne";
inline constexpr const char* kTsne = "tsne.json";         // in kTsneDir
inline constexpr const char* kReport = "report.html";
inline constexpr const char* kPlotsDir = "plots";
inline constexpr const char* kCvMetrics = "cv_metrics.json";  // cross-validation folder

// ---- model-file metadata keys (safetensors __metadata__) -------------------
inline constexpr const char* kConfigKey = "drifa.config";
// The model's own calibration (calibration/calibration.h, JSON), set by `drifa calibrate`.
inline constexpr const char* kCalibrationKey = "drifa.calibration";
// "paired" or "unpaired": how the training data paired its modalities. An unpaired model's
// missing modalities are marginalised over partners (inputs/partners.h), a paired one's absent.
inline constexpr const char* kPairingKey = "drifa.pairing";
// Volume modalities' recipes, {modality: recipe} as JSON (data/volume_slices.h): how `predict` cuts
// a volume into the slices the model was trained on.
inline constexpr const char* kVolumesKey = "drifa.volumes";
// The run config's [tta] table as JSON, {modality: transforms}: the views test-time augmentation
// may show each modality, so a bare model file augments as its run did (absent: hflip each).
inline constexpr const char* kTtaKey = "drifa.tta";
// The trainer's counters and optimizer state in checkpoint.safetensors (training/checkpoint.h).
inline constexpr const char* kTrainerStateKey = "drifa.trainer_state";
// Informational, in best.safetensors: the epoch and validation loss it was saved at.
inline constexpr const char* kEpochKey = "drifa.epoch";
inline constexpr const char* kValLossKey = "drifa.val_loss";
// (The partner bank's own file carries inputs::kBankKey, inputs/partners.h: below this layer.)

// ---- columns of the per-(sample, task) tables: predictions.csv and uq/samples.csv ----------
// sample, task, path_<modality>..., the table's own columns, prob_<k>...
inline constexpr const char* kColSample = "sample";
inline constexpr const char* kColTask = "task";
inline constexpr const char* kColPathPrefix = "path_";  // + modality name
inline constexpr const char* kColProbPrefix = "prob_";  // + class index of the row's task
inline constexpr const char* kColGroup = "group";
inline constexpr const char* kColTrueLabel = "true_label";
inline constexpr const char* kColPredictedLabel = "predicted_label";
inline constexpr const char* kColCorrect = "correct";
inline constexpr const char* kColPredictiveEntropy = "predictive_entropy";
inline constexpr const char* kColExpectedEntropy = "expected_entropy";
inline constexpr const char* kColMutualInformation = "mutual_information";
inline constexpr const char* kColSpread = "spread";

// ---- columns of log.csv (and keys of log.json's rows) ----------------------
inline constexpr const char* kColEpoch = "epoch";
inline constexpr const char* kColTrainLoss = "train_loss";
inline constexpr const char* kColValLoss = "val_loss";
inline constexpr const char* kColValAccPrefix = "val_acc_";  // + task name

}  // namespace drifa::runs::files
