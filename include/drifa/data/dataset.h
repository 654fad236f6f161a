#pragma once
// Data sets as lists of files and labels (decoding happens later, in the loader).
//
//  ModalitySet: one modality with one task (the authors' unpaired setting: each modality is its
//               own data set from different patients). Layouts: class folders, CSV manifest.
//  PairedSet:   one row per case, one image per modality and one label per task (same patient).
#include <string>
#include <vector>

namespace drifa::data {

struct Record {
  std::string path;
  int64_t label;
};

struct ModalitySet {
  std::string name;
  std::vector<std::string> classes;  // index = label
  std::vector<Record> records;
  std::vector<int64_t> labels() const;
  std::vector<size_t> class_counts() const;
};

struct PairedRecord {
  std::vector<std::string> paths;  // one per modality
  std::vector<int64_t> labels;     // one per task; -1 = unknown (ignored by the loss)
};

struct PairedSet {
  std::vector<std::string> modalities, tasks;
  std::vector<std::vector<std::string>> classes;  // per task
  std::vector<PairedRecord> records;
};

// One subfolder per class, images inside (recursively). Classes are the sorted folder names.
// Throws drifa::Error for a missing folder, no class folders, or a class folder without images.
ModalitySet load_class_folders(const std::string& root, const std::string& name);

struct ManifestSpec {
  std::string csv;
  std::string path_column = "path", label_column = "label";
  // "{}" is replaced by the path column's value, e.g. "images/{}.jpg"; relative paths are taken
  // from the CSV file's folder.
  std::string path_template = "{}";
  std::vector<std::string> classes;  // optional fixed label set; else the sorted labels seen
};
// Throws for unknown labels (when classes are given), missing files, empty manifests.
ModalitySet load_manifest(const ManifestSpec& spec, const std::string& name);

struct PairedSpec {
  std::string csv;
  std::vector<std::string> image_columns;  // one per modality
  std::vector<std::string> label_columns;  // one per task
  std::string path_template = "{}";
  std::vector<std::vector<std::string>> classes;  // optional, per task
};
PairedSet load_paired_manifest(const PairedSpec& spec);

// The test set must use the training set's label set: a class missing from the training data
// or unknown to it is an error naming both sources. Re-indexes test labels to train's classes.
void align_classes(const ModalitySet& train, ModalitySet& test, const std::string& train_src, const std::string& test_src);

}  // namespace drifa::data
