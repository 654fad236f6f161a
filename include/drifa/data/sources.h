#pragma once
// From a data configuration to ready example lists: read every source, align label sets,
// split (stratified, seeded), verify every image once, and pair modalities.
//
// Two settings:
//   unpaired  one data set per modality, one task per modality (the authors' setting);
//             training pairs are re-drawn every epoch, evaluation scores each task's own
//             samples exactly once with deterministic partners.
//   paired    one manifest row per case: an image per modality, a label per task.
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "drifa/data/dataset.h"
#include "drifa/data/loader.h"
#include "drifa/io/settings.h"

namespace drifa::data {

struct ModalitySource {
  std::string name;
  std::string train, test;  // class-folder roots; test optional
  ManifestSpec manifest;    // used when manifest.csv is set
  std::string test_manifest;
  GroupSpec groups;         // group_column | group_pattern | group_folders
  // kind = "volume": the sources list volumes (data/volume.h), each cut into slices by `volume`;
  // every slice belongs to its volume's group (or its patient's: group_patient_id, DICOM PatientID).
  std::string kind = "image";  // image | volume
  VolumeOptions volume;
  std::string mask_folder;     // slices = "mask": MASK_FOLDER/<volume's file name> (a series: <folder name>.nii.gz)
  bool group_patient_id = false;
  bool is_volume() const { return kind == "volume"; }
};

struct DataConfig {
  bool paired = false;
  std::vector<ModalitySource> modalities;  // unpaired
  PairedSpec paired_spec;                  // paired
  std::string paired_test_csv;
  double val_fraction = 0.2, test_fraction = 0.2;  // test_fraction applies when no test source is given
  int image_size = 128, channels = 3, min_side = 8, workers = 2;
  bool skip_bad = false;
  // The same pixels in two parts (a re-encoded copy included) is an error unless allowed.
  bool allow_duplicates = false;
  // Images whose header claims more pixels are refused before they are decoded.
  int64_t max_image_pixels = settings::limits::kDefaultImagePixels;
  int64_t max_volume_voxels = settings::limits::kDefaultVolumeVoxels;  // refused before reading when larger
  DicomOptions dicom;

  ImageOptions image_options() const;
  nlohmann::json to_json() const;
  // The [data] table, through the settings validator; base: folder that relative paths are
  // taken from (the config file's folder).
  static DataConfig from_json(settings::Table t, const std::string& base);
};

struct PreparedData {
  bool paired = false;
  std::vector<std::string> modalities, tasks;
  std::vector<std::vector<std::string>> classes;  // per task
  // unpaired: [modality] -> records; paired: one entry holding all cases (see cases_*)
  std::vector<ModalitySet> train, val, test;
  std::vector<PairedRecord> cases_train, cases_val, cases_test;
  // Per modality (paired: one entry) whether the source names groups; then splits and folds
  // are grouped. Record groups: Record::group, PairedRecord::group.
  std::vector<bool> grouped;
  bool any_grouped() const;

  // balanced: class-balanced draws (TrainConfig::sampling) instead of shuffled passes.
  std::vector<Example> train_examples(uint64_t seed, int64_t epoch, bool balanced = false) const;
  // The training split's labels of each task (unpaired: task t = modality t).
  std::vector<std::vector<int64_t>> train_labels() const;
  // Evaluation lists: each task's samples exactly once; labels of tasks not scored are -1.
  std::vector<Example> eval_examples(const std::string& part, uint64_t seed) const;  // "val" | "test"
  std::vector<std::string> all_paths() const;
  // The three parts in order, each with its cases (paired) and its per-modality sets (unpaired).
  struct Part {
    const char* name;  // "train" | "val" | "test"
    const std::vector<PairedRecord>& cases;
    const std::vector<ModalitySet>& sets;
  };
  std::vector<Part> parts() const { return {{"train", cases_train, train}, {"val", cases_val, val}, {"test", cases_test, test}}; }

  nlohmann::json to_json() const;  // the split record saved in the run folder
  // Checks the record against itself: class lists per task, one record list per modality (or
  // one path per modality and one label per task in every case), labels within their class lists.
  static PreparedData from_json(const nlohmann::json& j, const std::string& source);
};

// {modality: recipe} of the volume modalities ("" when none): the model file's drifa.volumes.
std::string volume_recipes_json(const DataConfig& cfg);
// Reads that metadata back through the recipe validator; source names the model file.
std::map<std::string, VolumeOptions> volume_recipes_from_json(const std::string& text, int channels, const std::string& source);

// A volume modality's volumes (records: the volume paths) as slice records: each volume's selected
// slices (data/volume_slices.h references), labelled and grouped as the volume. Reads every
// volume's header (and a mask volume where slices = "mask").
ModalitySet expand_volume_slices(const ModalitySet& volumes, const ModalitySource& src, int64_t max_voxels);

// Reads, aligns, splits. Does not decode (see verify_prepared).
PreparedData prepare_data(const DataConfig& cfg, uint64_t seed);

// Fold `fold` of a stratified k-fold cross-validation over d's training and validation items
// together (d's test part is left out): the fold becomes the test part, the rest is split into
// training and validation as prepare_data does (val_fraction, stratified). Folds come from
// data::stratified_folds per modality (paired: by the first task), seeded.
PreparedData cv_fold(const PreparedData& d, int folds, int fold, double val_fraction, uint64_t seed);

// The same decoded pixels (a 64-bit hash of size, type and bytes) in two parts of one modality.
struct Duplicate {
  std::string modality, part_a, path_a, part_b, path_b;
};
std::vector<Duplicate> find_duplicates(const PreparedData& d, ImageCache& cache);
std::string describe(const Duplicate& x);
// find_duplicates, then an error naming the first pair, or with cfg.allow_duplicates a warning per pair.
void check_duplicates(const PreparedData& d, ImageCache& cache, const DataConfig& cfg, std::vector<std::string>& warnings);

// The groups of each part (unpaired: per modality) for the log and `drifa check`: counts of
// groups, of images, of groups mixing labels, and of groups found in two parts.
struct GroupCounts {
  std::string modality;
  size_t train_groups = 0, val_groups = 0, test_groups = 0, mixed = 0, spanning = 0;
  std::string example;  // a group found in two parts, if any
};
std::vector<GroupCounts> group_counts(const PreparedData& d);

// Decodes every image once into the cache. Bad files: error (naming the first and the count), or
// with skip_bad, dropped with a warning line per file in `warnings`. A class left empty is an error.
void verify_prepared(PreparedData& d, ImageCache& cache, const DataConfig& cfg, std::vector<std::string>& warnings);

}  // namespace drifa::data
