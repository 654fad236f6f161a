#pragma once
// Data sets as lists of files and labels (decoding happens later, in the loader).
//
//  ModalitySet: one modality with one task (the authors' unpaired setting: each modality is its
//               own data set from different patients). Layouts: class folders, CSV manifest.
//  PairedSet:   one row per case, one image per modality and one label per task (same patient).
#include <string>
#include <vector>

namespace drifa::data {

// The independent unit an image belongs to (patient, lesion, volume): images of one group never
// land in two parts of a split. Without a grouping, each image is its own group (group == path).
struct Record {
  std::string path;
  int64_t label;
  std::string group;
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
  std::string group;               // the case's independent unit; "" = the row is its own group
};

struct PairedSet {
  std::vector<std::string> modalities, tasks;
  std::vector<std::vector<std::string>> classes;  // per task
  std::vector<PairedRecord> records;
};

// How a source names its groups (at most one way). Nothing set: each image its own group.
//   column   a manifest column (lesion_id, patient_id); an empty value is an error
//   pattern  an ECMAScript regular expression searched in the file name; the group is its first
//            capture, or the whole match without one; a name it does not match is an error
//   folders  class folders: the first sub-folder inside each class folder (CLASS/PATIENT/...)
struct GroupSpec {
  std::string column, pattern;
  bool folders = false;
  bool given() const { return !column.empty() || !pattern.empty() || folders; }
};

// One subfolder per class, images inside (recursively). Classes are the sorted folder names.
// Throws drifa::Error for a missing folder, no class folders, or a class folder without images.
// groups: pattern or folders (a column needs a manifest). volumes: the entries are volumes
// (data/volume.h: .nii, .nii.gz files and DICOM series folders) instead of images.
ModalitySet load_class_folders(const std::string& root, const std::string& name, const GroupSpec& groups = {},
                               bool volumes = false);

struct ManifestSpec {
  std::string csv;
  std::string path_column = "path", label_column = "label";
  // "{}" is replaced by the path column's value, e.g. "images/{}.jpg"; relative paths are taken
  // from the CSV file's folder.
  std::string path_template = "{}";
  std::vector<std::string> classes;  // optional fixed label set; else the sorted labels seen
  GroupSpec groups;
};
// Throws for unknown labels (when classes are given), missing files, empty manifests.
ModalitySet load_manifest(const ManifestSpec& spec, const std::string& name);

struct PairedSpec {
  std::string csv;
  std::vector<std::string> image_columns;  // one per modality
  std::vector<std::string> label_columns;  // one per task
  std::string path_template = "{}";
  std::vector<std::vector<std::string>> classes;  // optional, per task
  GroupSpec groups;                                // column or pattern (over the first image's file name)
};
PairedSet load_paired_manifest(const PairedSpec& spec);

// The test set must use the training set's label set: a class missing from the training data
// or unknown to it is an error naming both sources. Re-indexes test labels to train's classes.
void align_classes(const ModalitySet& train, ModalitySet& test, const std::string& train_src, const std::string& test_src);

// A test source that shares a group with its training source is refused: the error names the
// group and a file of it on each side.
void check_disjoint_groups(const ModalitySet& train, const ModalitySet& test, const std::string& train_src,
                           const std::string& test_src);
// The same for paired cases (a case's file: its first image).
void check_disjoint_groups(const std::vector<PairedRecord>& train, const std::vector<PairedRecord>& test,
                           const std::string& train_src, const std::string& test_src);
}  // namespace drifa::data
