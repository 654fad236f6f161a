#include "drifa/data/dataset.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <set>

#include "drifa/data/csv.h"
#include "drifa/data/image.h"
#include "drifa/data/volume.h"
#include "drifa/error.h"

namespace fs = std::filesystem;

namespace drifa::data {

std::vector<int64_t> ModalitySet::labels() const {
  std::vector<int64_t> y;
  for (const auto& r : records) y.push_back(r.label);
  return y;
}

std::vector<size_t> ModalitySet::class_counts() const {
  std::vector<size_t> c(classes.size(), 0);
  for (const auto& r : records) c[r.label]++;
  return c;
}

namespace {

// A source's group_pattern, compiled once for all its files.
struct GroupPattern {
  std::string text;
  std::regex re;

  GroupPattern(const std::string& pattern, const std::string& where) : text(pattern) {
    try {
      re = std::regex(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      throw Error(where + ": group_pattern: found '" + pattern + "', allowed a regular expression (" + e.what() + ")");
    }
  }

  // The group of a file name: the first capture, or the whole match (where: the row or source).
  std::string group_of(const std::string& path, const std::string& where) const {
    const std::string file = fs::path(path).filename().string();
    std::smatch m;
    if (!std::regex_search(file, m, re))
      throw Error(where + ": group_pattern '" + text + "' matches nothing in the file name " + file + " (" + path + ")");
    const std::string g = m.size() > 1 ? m[1].str() : m[0].str();
    if (g.empty()) throw Error(where + ": group_pattern '" + text + "' gives an empty group for " + path);
    return g;
  }
};

std::optional<GroupPattern> group_pattern(const GroupSpec& groups, const std::string& where) {
  if (groups.pattern.empty()) return std::nullopt;
  return GroupPattern(groups.pattern, where);
}

}  // namespace

namespace {

// (group, file) of each training and test item; the first test group seen in training is an error.
void refuse_shared_group(const std::string& prefix, const std::vector<std::pair<std::string, std::string>>& train,
                         const std::vector<std::pair<std::string, std::string>>& test, const std::string& train_src,
                         const std::string& test_src) {
  std::map<std::string, std::string> seen;
  for (const auto& [group, path] : train) seen.emplace(group, path);
  for (const auto& [group, path] : test)
    if (auto it = seen.find(group); it != seen.end())
      throw Error(prefix + "group '" + group + "' is in both the training data (" + train_src + ": " + it->second +
                  ") and the test data (" + test_src + ": " + path + "); a patient, lesion or volume must be in one part only");
}

}  // namespace

void check_disjoint_groups(const ModalitySet& train, const ModalitySet& test, const std::string& train_src,
                           const std::string& test_src) {
  auto items = [](const ModalitySet& s) {
    std::vector<std::pair<std::string, std::string>> v;
    for (const auto& r : s.records) v.emplace_back(r.group, r.path);
    return v;
  };
  refuse_shared_group(train.name + ": ", items(train), items(test), train_src, test_src);
}

void check_disjoint_groups(const std::vector<PairedRecord>& train, const std::vector<PairedRecord>& test,
                           const std::string& train_src, const std::string& test_src) {
  auto items = [](const std::vector<PairedRecord>& cases) {
    std::vector<std::pair<std::string, std::string>> v;
    for (const auto& c : cases) v.emplace_back(c.group, c.paths[0]);
    return v;
  };
  refuse_shared_group("", items(train), items(test), train_src, test_src);
}

namespace {
// The volumes under a folder: NIfTI files, and folders that hold files other than NIfTI (a DICOM
// series each; not searched further).
std::vector<std::string> list_volumes(const fs::path& root) {
  std::vector<std::string> out;
  auto is_nifti = [](const fs::path& p) { return is_volume_path(p.string()) && !fs::is_directory(p); };
  auto holds_series = [&](const fs::path& dir) {
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file() && e.path().filename().string()[0] != '.' && !is_nifti(e.path())) return true;
    return false;
  };
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    const auto& p = it->path();
    if (p.filename().string()[0] == '.') {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_directory() && holds_series(p)) {
      out.push_back(p.string());
      it.disable_recursion_pending();
    } else if (it->is_regular_file() && is_nifti(p)) {
      out.push_back(p.string());
    }
  }
  return out;
}
}  // namespace

ModalitySet load_class_folders(const std::string& root, const std::string& name, const GroupSpec& groups, bool volumes) {
  if (!fs::exists(root)) throw Error(name + ": data folder " + root + " does not exist");
  const auto pattern = group_pattern(groups, name);
  if (!fs::is_directory(root)) throw Error(name + ": " + root + " is not a folder");
  ModalitySet s;
  s.name = name;
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory() && e.path().filename().string()[0] != '.') dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  if (dirs.empty()) throw Error(name + ": " + root + " has no class subfolders (expected one folder per class)");
  if (dirs.size() < 2) throw Error(name + ": " + root + " has only one class folder (" + dirs[0].filename().string() + ")");
  for (const auto& d : dirs) {
    const int64_t label = static_cast<int64_t>(s.classes.size());
    s.classes.push_back(d.filename().string());
    std::vector<std::string> files;
    if (volumes) {
      files = list_volumes(d);
    } else {
      for (const auto& e : fs::recursive_directory_iterator(d))
        if (e.is_regular_file() && is_image_path(e.path().string())) files.push_back(e.path().string());
    }
    if (files.empty()) throw Error(name + ": class folder " + d.string() + " contains no " + (volumes ? "volumes (.nii, .nii.gz or DICOM series folders)" : "images"));
    std::sort(files.begin(), files.end());
    for (auto& f : files) {
      std::string g = f;
      if (groups.folders) {
        const auto rel = fs::path(f).lexically_relative(d);
        if (std::distance(rel.begin(), rel.end()) < 2)
          throw Error(name + ": group_folders: " + f + " lies directly in its class folder, allowed CLASS/GROUP/image files");
        g = rel.begin()->string();
      } else if (pattern) {
        g = pattern->group_of(f, name);
      }
      s.records.push_back({f, label, g});
    }
  }
  return s;
}

namespace {

std::string resolve(const std::string& tmpl, const std::string& value, const fs::path& base, const std::string& where) {
  // A NUL byte would cut the path short where the system reads it, naming another file.
  for (unsigned char c : value)
    if (c < 0x20) throw Error(where + ": the path holds a NUL byte or another control character");
  std::string p = tmpl;
  const auto pos = p.find("{}");
  if (pos != std::string::npos) p.replace(pos, 2, value);
  fs::path fp(p);
  return (fp.is_absolute() ? fp : base / fp).lexically_normal().string();
}

// Maps label strings to indices: a fixed list if given, else the sorted distinct labels.
std::vector<std::string> label_set(const std::vector<std::string>& fixed, const std::vector<std::string>& seen) {
  if (!fixed.empty()) return fixed;
  std::set<std::string> s(seen.begin(), seen.end());
  s.erase("");
  return {s.begin(), s.end()};
}

int64_t index_of(const std::vector<std::string>& classes, const std::string& label) {
  auto it = std::find(classes.begin(), classes.end(), label);
  return it == classes.end() ? -1 : static_cast<int64_t>(it - classes.begin());
}

}  // namespace

ModalitySet load_manifest(const ManifestSpec& spec, const std::string& name) {
  auto table = read_csv(spec.csv);
  const int pc = table.column(spec.path_column, spec.csv), lc = table.column(spec.label_column, spec.csv);
  const int gc = spec.groups.column.empty() ? -1 : table.column(spec.groups.column, spec.csv);
  const auto pattern = group_pattern(spec.groups, spec.csv);
  if (table.rows.empty()) throw Error(spec.csv + ": manifest has a header but no rows");
  std::vector<std::string> seen;
  for (const auto& r : table.rows) seen.push_back(r[lc]);
  ModalitySet s;
  s.name = name;
  s.classes = label_set(spec.classes, seen);
  const fs::path base = fs::path(spec.csv).parent_path();
  for (size_t i = 0; i < table.rows.size(); ++i) {
    const auto& r = table.rows[i];
    const std::string where = spec.csv + " row " + std::to_string(i + 2);
    if (r[pc].empty()) throw Error(where + ": empty " + spec.path_column);
    const int64_t label = index_of(s.classes, r[lc]);
    if (label < 0) throw Error(where + ": unknown label '" + r[lc] + "' in column " + spec.label_column);
    const std::string path = resolve(spec.path_template, r[pc], base, where);
    if (!fs::exists(path)) throw Error(where + ": image " + path + " not found");
    std::string g = path;
    if (gc >= 0) {
      g = r[gc];
      if (g.empty()) throw Error(where + ": empty group in column " + spec.groups.column + " (group_column)");
    } else if (pattern) {
      g = pattern->group_of(path, where);
    }
    s.records.push_back({path, label, g});
  }
  if (s.classes.size() < 2) throw Error(spec.csv + ": needs at least 2 classes, found " + std::to_string(s.classes.size()));
  return s;
}

PairedSet load_paired_manifest(const PairedSpec& spec) {
  auto table = read_csv(spec.csv);
  if (spec.image_columns.size() < 2) throw Error(spec.csv + ": a paired manifest needs >= 2 image columns");
  if (spec.label_columns.empty()) throw Error(spec.csv + ": a paired manifest needs >= 1 label column");
  if (table.rows.empty()) throw Error(spec.csv + ": manifest has a header but no rows");
  PairedSet s;
  s.modalities = spec.image_columns;
  s.tasks = spec.label_columns;
  std::vector<int> ic, lc;
  for (const auto& c : spec.image_columns) ic.push_back(table.column(c, spec.csv));
  const int gc = spec.groups.column.empty() ? -1 : table.column(spec.groups.column, spec.csv);
  const auto pattern = group_pattern(spec.groups, spec.csv);
  for (size_t t = 0; t < spec.label_columns.size(); ++t) {
    lc.push_back(table.column(spec.label_columns[t], spec.csv));
    std::vector<std::string> seen;
    for (const auto& r : table.rows) seen.push_back(r[lc.back()]);
    s.classes.push_back(label_set(t < spec.classes.size() ? spec.classes[t] : std::vector<std::string>{}, seen));
    if (s.classes.back().size() < 2)
      throw Error(spec.csv + ": column " + spec.label_columns[t] + " needs at least 2 classes");
  }
  const fs::path base = fs::path(spec.csv).parent_path();
  for (size_t i = 0; i < table.rows.size(); ++i) {
    const auto& r = table.rows[i];
    const std::string where = spec.csv + " row " + std::to_string(i + 2);
    PairedRecord rec;
    for (size_t m = 0; m < ic.size(); ++m) {
      if (r[ic[m]].empty()) throw Error(where + ": empty " + spec.image_columns[m]);
      rec.paths.push_back(resolve(spec.path_template, r[ic[m]], base, where));
      if (!fs::exists(rec.paths.back())) throw Error(where + ": image " + rec.paths.back() + " not found");
    }
    for (size_t t = 0; t < lc.size(); ++t) {
      const std::string& v = r[lc[t]];
      if (v.empty()) {
        rec.labels.push_back(-1);  // unknown for this case: ignored by the loss
        continue;
      }
      const int64_t k = index_of(s.classes[t], v);
      if (k < 0) throw Error(where + ": unknown label '" + v + "' in column " + spec.label_columns[t]);
      rec.labels.push_back(k);
    }
    if (gc >= 0) {
      rec.group = r[gc];
      if (rec.group.empty()) throw Error(where + ": empty group in column " + spec.groups.column + " (group_column)");
    } else if (pattern) {
      rec.group = pattern->group_of(rec.paths[0], where);
    }  // else "": the row is its own group
    s.records.push_back(std::move(rec));
  }
  return s;
}

void align_classes(const ModalitySet& train, ModalitySet& test, const std::string& train_src, const std::string& test_src) {
  if (train.classes == test.classes) return;
  std::vector<int64_t> remap;
  for (const auto& c : test.classes) {
    const int64_t k = index_of(train.classes, c);
    if (k < 0) {
      std::string tc;
      for (const auto& x : train.classes) tc += (tc.empty() ? "" : ", ") + x;
      throw Error(train.name + ": label sets disagree: class '" + c + "' is in " + test_src + " but not in " +
                  train_src + " (" + tc + ")");
    }
    remap.push_back(k);
  }
  for (const auto& c : train.classes)
    if (index_of(test.classes, c) < 0)
      throw Error(train.name + ": label sets disagree: class '" + c + "' is in " + train_src + " but has no test images in " +
                  test_src);
  for (auto& r : test.records) r.label = remap[r.label];
  test.classes = train.classes;
}

}  // namespace drifa::data
