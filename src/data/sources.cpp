#include "drifa/data/sources.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "drifa/data/split.h"
#include "drifa/data/volume.h"
#include "drifa/data/volume_slices.h"
#include "drifa/error.h"
#include "drifa/io/settings.h"

namespace fs = std::filesystem;

namespace drifa::data {

namespace {

std::string abs_path(const std::string& p, const std::string& base) {
  if (p.empty()) return p;
  fs::path fp(p);
  return (fp.is_absolute() ? fp : fs::path(base) / fp).lexically_normal().string();
}

ModalitySet subset(const ModalitySet& s, const std::vector<size_t>& idx) {
  ModalitySet o;
  o.name = s.name;
  o.classes = s.classes;
  for (auto i : idx) o.records.push_back(s.records[i]);
  return o;
}

nlohmann::json records_json(const ModalitySet& s) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& r : s.records)
    a.push_back(r.group == r.path ? nlohmann::json{r.path, r.label} : nlohmann::json{r.path, r.label, r.group});
  return a;
}

nlohmann::json cases_json(const std::vector<PairedRecord>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& r : v) {
    nlohmann::json c{{"paths", r.paths}, {"labels", r.labels}};
    if (!r.group.empty()) c["group"] = r.group;
    a.push_back(c);
  }
  return a;
}

std::vector<std::string> groups_of(const ModalitySet& s) {
  std::vector<std::string> g;
  for (const auto& r : s.records) g.push_back(r.group);
  return g;
}

std::vector<std::string> groups_of(const std::vector<PairedRecord>& cases) {
  std::vector<std::string> g;
  for (const auto& c : cases) g.push_back(c.group);
  return g;
}

// The split of one source: by groups when the source names them, else by image (as before groups).
std::pair<std::vector<size_t>, std::vector<size_t>> split(const std::vector<int64_t>& y, const std::vector<std::string>& g,
                                                          bool grouped, double fraction, uint64_t seed) {
  return grouped ? stratified_group_split(y, g, fraction, seed) : stratified_split(y, fraction, seed);
}

std::vector<int> folds(const std::vector<int64_t>& y, const std::vector<std::string>& g, bool grouped, int k, uint64_t seed) {
  return grouped ? stratified_group_folds(y, g, k, seed) : stratified_folds(y, k, seed);
}

// The setting that named a source's groups, for messages.
std::string group_setting(const GroupSpec& g) {
  if (!g.given()) return "one group per volume";
  if (!g.column.empty()) return "group_column '" + g.column + "'";
  if (!g.pattern.empty()) return "group_pattern '" + g.pattern + "'";
  return "group_folders";
}

// A grouped source must hold enough groups for its parts: training, validation and (when the
// test part is split from it) test.
void check_group_count(const std::vector<std::string>& groups, const GroupSpec& spec, const std::string& source, bool test_too) {
  std::set<std::string> distinct(groups.begin(), groups.end());
  const size_t need = test_too ? 3 : 2;
  if (distinct.size() < need)
    throw Error(source + ": " + group_setting(spec) + ": found " + std::to_string(distinct.size()) + " group" +
                (distinct.size() == 1 ? "" : "s") + " in " + std::to_string(groups.size()) + " images, allowed at least " +
                std::to_string(need) + " (a group is never split between training, validation" + (test_too ? " and test" : "") + ")");
}

// [[data.modality]] / [data.paired]: the group_* keys, at most one, each where it applies.
GroupSpec read_groups(settings::Table& m, bool manifest, bool folders_allowed) {
  GroupSpec g;
  g.column = m.string("group_column", "", false);
  g.pattern = m.string("group_pattern", "", false);
  g.folders = folders_allowed ? m.boolean("group_folders", false) : false;
  const int given = int(!g.column.empty()) + int(!g.pattern.empty()) + int(g.folders);
  if (given > 1) m.fail("group_column", "give at most one of group_column, group_pattern, group_folders");
  if (!g.column.empty() && !manifest) m.fail("group_column", "needs a manifest; for class folders use group_folders or group_pattern");
  if (g.folders && manifest) m.fail("group_folders", "needs class folders (train = ...); for a manifest use group_column");
  if (!g.pattern.empty()) {
    try {
      std::regex re(g.pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      m.fail("group_pattern", "found '" + g.pattern + "', allowed a regular expression (" + e.what() + ")");
    }
  }
  return g;
}

nlohmann::json groups_json(const GroupSpec& g) {
  nlohmann::json j = nlohmann::json::object();
  if (!g.column.empty()) j["group_column"] = g.column;
  if (!g.pattern.empty()) j["group_pattern"] = g.pattern;
  if (g.folders) j["group_folders"] = true;
  return j;
}

// Stratify paired cases on their first task's label (unknown labels form their own stratum).
std::vector<int64_t> strata(const std::vector<PairedRecord>& cases) {
  std::vector<int64_t> y;
  for (const auto& c : cases) y.push_back(c.labels[0]);
  return y;
}


// [[data.modality]] kind = "volume": the recipe that cuts its volumes, and where its masks and groups come from.
void read_volume_source(settings::Table& m, ModalitySource& s, int channels, const std::string& base) {
  s.volume = read_volume_options(m, channels);
  if (m.has("mask_folder")) s.mask_folder = abs_path(m.string("mask_folder", "", false), base);
  if ((s.volume.slices == "mask") != !s.mask_folder.empty())
    m.fail("mask_folder", s.volume.slices == "mask" ? "missing; slices = \"mask\" needs mask_folder" : "given, but slices is not \"mask\"");
  s.group_patient_id = m.boolean("group_patient_id", false);
  if (s.group_patient_id && s.groups.given()) m.fail("group_patient_id", "give at most one of group_patient_id, group_column, group_pattern, group_folders");
}

}  // namespace

nlohmann::json DataConfig::to_json() const {
  nlohmann::json mods = nlohmann::json::array();
  for (const auto& m : modalities) {
    nlohmann::json j{{"name", m.name}};
    if (!m.train.empty()) j["train"] = m.train;
    if (!m.test.empty()) j["test"] = m.test;
    if (!m.manifest.csv.empty()) {
      j["manifest"] = m.manifest.csv;
      j["path_column"] = m.manifest.path_column;
      j["label_column"] = m.manifest.label_column;
      j["path_template"] = m.manifest.path_template;
      if (!m.manifest.classes.empty()) j["classes"] = m.manifest.classes;
    }
    if (!m.test_manifest.empty()) j["test_manifest"] = m.test_manifest;
    j.update(groups_json(m.groups));
    if (m.is_volume()) {
      j["kind"] = "volume";
      j.update(data::to_json(m.volume));
      if (!m.mask_folder.empty()) j["mask_folder"] = m.mask_folder;
      if (m.group_patient_id) j["group_patient_id"] = true;
    }
    mods.push_back(j);
  }
  nlohmann::json j{{"val_fraction", val_fraction}, {"test_fraction", test_fraction}, {"image_size", image_size},
                   {"channels", channels},         {"min_side", min_side},           {"workers", workers},
                   {"skip_bad", skip_bad}};
  if (allow_duplicates) j["allow_duplicates"] = true;
  if (max_image_pixels != settings::limits::kDefaultImagePixels) j["max_image_pixels"] = max_image_pixels;
  if (max_volume_voxels != settings::limits::kDefaultVolumeVoxels) j["max_volume_voxels"] = max_volume_voxels;
  if (dicom.window_center) j["window_center"] = *dicom.window_center;
  if (dicom.window_width) j["window_width"] = *dicom.window_width;
  if (paired) {
    j["paired"] = {{"manifest", paired_spec.csv},
                   {"images", paired_spec.image_columns},
                   {"labels", paired_spec.label_columns},
                   {"path_template", paired_spec.path_template}};
    if (!paired_spec.classes.empty()) j["paired"]["classes"] = paired_spec.classes;
    if (!paired_test_csv.empty()) j["paired"]["test_manifest"] = paired_test_csv;
    j["paired"].update(groups_json(paired_spec.groups));
  } else {
    j["modality"] = mods;
  }
  return j;
}

DataConfig DataConfig::from_json(settings::Table t, const std::string& base) {
  namespace L = settings::limits;
  for (const char* k : {"window_center", "window_width", "paired", "modality"}) t.allow(k);  // optional tables and pairs
  DataConfig c;
  c.val_fraction = t.real("val_fraction", c.val_fraction, L::kFraction);
  c.test_fraction = t.real("test_fraction", c.test_fraction, L::kFraction);
  c.image_size = static_cast<int>(t.integer("image_size", c.image_size, L::kImageSize));
  c.channels = static_cast<int>(t.integer("channels", c.channels, {1, 5}));
  if (c.channels == 2 || c.channels == 4) t.fail("channels", "found " + std::to_string(c.channels) + ", allowed 1, 3, or 5 (a volume modality's stack = 5)");
  c.min_side = static_cast<int>(t.integer("min_side", c.min_side, L::kMinSide));
  c.workers = static_cast<int>(t.integer("workers", c.workers, L::kWorkers));
  c.skip_bad = t.boolean("skip_bad", c.skip_bad);
  c.allow_duplicates = t.boolean("allow_duplicates", c.allow_duplicates);
  c.max_image_pixels = t.integer("max_image_pixels", c.max_image_pixels, L::kImagePixels);
  c.max_volume_voxels = t.integer("max_volume_voxels", c.max_volume_voxels, L::kVolumeVoxels);
  if (t.has("window_center")) c.dicom.window_center = t.real("window_center", 0, L::kWindow);
  if (t.has("window_width")) c.dicom.window_width = t.real("window_width", 1, L::kWindowWidth);
  if (c.dicom.window_center.has_value() != c.dicom.window_width.has_value())
    t.fail(c.dicom.window_center ? "window_width" : "window_center", "missing; window_center and window_width go together");
  auto path = [&](settings::Table& tt, const char* key) { return abs_path(tt.string(key, "", false), base); };
  auto opt_path = [&](settings::Table& tt, const char* key) { return tt.has(key) ? path(tt, key) : std::string(); };
  if (t.has("paired")) {
    auto p = t.table("paired");
    c.paired = true;
    if (!p.has("manifest")) p.fail("manifest", "missing (the paired manifest CSV)");
    c.paired_spec.csv = path(p, "manifest");
    c.paired_spec.image_columns = p.names("images", {}, L::kModalities, true);
    c.paired_spec.label_columns = p.names("labels", {}, L::kTasks, true);
    if (c.paired_spec.image_columns.empty()) p.fail("images", "missing (one image column per modality)");
    if (c.paired_spec.label_columns.empty()) p.fail("labels", "missing (one label column per task)");
    c.paired_spec.path_template = p.string("path_template", "{}", false);
    if (p.has("classes")) c.paired_spec.classes = p.name_lists("classes", {0, L::kTasks.hi}, L::kClasses);
    c.paired_test_csv = opt_path(p, "test_manifest");
    c.paired_spec.groups = read_groups(p, true, false);
    p.finish();
  }
  auto mods = t.tables("modality", {0, L::kModalities.hi});
  if (!mods.empty() && c.paired) t.fail("modality", "give either [data.paired] or [[data.modality]] entries, not both");
  std::set<std::string> names;
  for (auto& m : mods) {
    ModalitySource s;
    if (!m.has("name")) m.fail("name", "missing");
    s.name = m.string("name", "", false);
    settings::check_name(t.source(), m.key_path("name"), s.name);
    if (!names.insert(s.name).second) m.fail("name", "found '" + s.name + "' twice, allowed distinct modality names");
    s.train = opt_path(m, "train");
    s.test = opt_path(m, "test");
    s.manifest.csv = opt_path(m, "manifest");
    s.manifest.path_column = m.string("path_column", "path", false);
    s.manifest.label_column = m.string("label_column", "label", false);
    s.manifest.path_template = m.string("path_template", "{}", false);
    s.manifest.classes = m.names("classes", {}, {0, L::kClasses.hi}, true);
    s.test_manifest = opt_path(m, "test_manifest");
    if (s.train.empty() == s.manifest.csv.empty())
      m.fail("train", "give exactly one of train (class folders) or manifest (CSV) for modality '" + s.name + "'");
    s.groups = read_groups(m, !s.manifest.csv.empty(), true);
    s.manifest.groups = s.groups;
    s.kind = m.choice("kind", "image", {"image", "volume"});
    if (s.is_volume()) read_volume_source(m, s, c.channels, base);
    m.finish();
    c.modalities.push_back(s);
  }
  t.finish();
  if (!c.paired && c.modalities.size() < 2)
    t.fail("modality", "found " + std::to_string(c.modalities.size()) +
                           " modalities, allowed at least 2 ([[data.modality]] entries, or one [data.paired] table)");
  return c;
}

ImageOptions DataConfig::image_options() const {
  ImageOptions o;
  o.size = image_size;
  o.channels = channels;
  o.min_side = min_side;
  o.dicom = dicom;
  o.max_pixels = max_image_pixels;
  for (const auto& m : modalities)
    if (m.is_volume()) o.volumes[m.name] = m.volume;
  o.max_volume_voxels = max_volume_voxels;
  return o;
}

std::string volume_recipes_json(const DataConfig& cfg) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& m : cfg.modalities)
    if (m.is_volume()) j[m.name] = data::to_json(m.volume);
  return j.empty() ? "" : j.dump();
}

std::map<std::string, VolumeOptions> volume_recipes_from_json(const std::string& text, int channels, const std::string& source) {
  const auto j = settings::parse_json(text, source + ": metadata drifa.volumes");
  if (!j.is_object()) throw Error(source + ": metadata drifa.volumes: found " + settings::show(j) + ", allowed an object {modality: recipe}");
  std::map<std::string, VolumeOptions> out;
  for (const auto& [name, recipe] : j.items()) {
    settings::Table t(recipe, source, "drifa.volumes." + name);
    out[name] = read_volume_options(t, channels);
    t.finish();
  }
  return out;
}

ModalitySet expand_volume_slices(const ModalitySet& volumes, const ModalitySource& src, int64_t max_voxels) {
  ModalitySet out;
  out.name = volumes.name;
  out.classes = volumes.classes;
  for (const auto& r : volumes.records) {
    const VolumeInfo info = read_volume_info(r.path, max_voxels, src.volume.series);
    std::string group = r.group;
    if (src.group_patient_id) {
      if (info.format != "dicom") throw Error(r.path + ": group_patient_id needs DICOM series (a NIfTI file has no PatientID)");
      if (info.patient_id.empty()) throw Error(r.path + ": group_patient_id: the series has no PatientID (0010,0020)");
      group = "patient " + info.patient_id;
    }
    std::optional<Volume> mask;
    if (src.volume.slices == "mask") {
      const fs::path vp(r.path);
      const std::string name = info.format == "dicom" ? vp.filename().string() + ".nii.gz" : vp.filename().string();
      mask = read_volume((fs::path(src.mask_folder) / name).string(), max_voxels);
    }
    for (int64_t k : select_slices(info, src.volume, mask ? &*mask : nullptr, r.path))
      out.records.push_back({slice_ref(r.path, src.name, k), r.label, group});
  }
  return out;
}

bool PreparedData::any_grouped() const { return std::find(grouped.begin(), grouped.end(), true) != grouped.end(); }

PreparedData prepare_data(const DataConfig& cfg, uint64_t seed) {
  PreparedData d;
  d.paired = cfg.paired;
  if (cfg.paired) {
    auto all = load_paired_manifest(cfg.paired_spec);
    d.modalities = all.modalities;
    d.tasks = all.tasks;
    d.classes = all.classes;
    const bool grouped = cfg.paired_spec.groups.given();
    d.grouped = {grouped};
    std::vector<PairedRecord> pool = all.records;
    if (grouped) check_group_count(groups_of(pool), cfg.paired_spec.groups, cfg.paired_spec.csv, cfg.paired_test_csv.empty());
    if (!cfg.paired_test_csv.empty()) {
      PairedSpec ts = cfg.paired_spec;
      ts.csv = cfg.paired_test_csv;
      ts.classes = all.classes;  // the training label sets; an unknown test label is an error
      d.cases_test = load_paired_manifest(ts).records;
      if (grouped) check_disjoint_groups(pool, d.cases_test, cfg.paired_spec.csv, cfg.paired_test_csv);
    } else {
      auto [keep, held] = split(strata(pool), groups_of(pool), grouped, cfg.test_fraction, mix_seed(seed, 1));
      for (auto i : held) d.cases_test.push_back(pool[i]);
      std::vector<PairedRecord> rest;
      for (auto i : keep) rest.push_back(pool[i]);
      pool = rest;
    }
    auto [tr, va] = split(strata(pool), groups_of(pool), grouped, cfg.val_fraction, mix_seed(seed, 2));
    for (auto i : tr) d.cases_train.push_back(pool[i]);
    for (auto i : va) d.cases_val.push_back(pool[i]);
    return d;
  }
  for (size_t m = 0; m < cfg.modalities.size(); ++m) {
    const auto& src = cfg.modalities[m];
    const bool grouped = src.groups.given() || src.is_volume();  // a volume's slices are one group
    auto load = [&](ModalitySet s) { return src.is_volume() ? expand_volume_slices(s, src, cfg.max_volume_voxels) : s; };
    ModalitySet train = load(src.manifest.csv.empty() ? load_class_folders(src.train, src.name, src.groups, src.is_volume())
                                                      : load_manifest(src.manifest, src.name));
    const std::string train_src = src.manifest.csv.empty() ? src.train : src.manifest.csv;
    const bool split_test = src.test.empty() && src.test_manifest.empty();
    if (grouped) check_group_count(groups_of(train), src.groups, src.name + " (" + train_src + ")", split_test);
    ModalitySet test;
    if (!src.test.empty() || !src.test_manifest.empty()) {
      ManifestSpec ts = src.manifest;
      ts.csv = src.test_manifest;
      if (!src.test_manifest.empty()) ts.classes = {};
      const std::string test_src = src.test.empty() ? src.test_manifest : src.test;
      test = load(src.test.empty() ? load_manifest(ts, src.name) : load_class_folders(src.test, src.name, src.groups, src.is_volume()));
      align_classes(train, test, train_src, test_src);
      if (grouped) check_disjoint_groups(train, test, train_src, test_src);
    } else {
      auto [keep, held] = split(train.labels(), groups_of(train), grouped, cfg.test_fraction, mix_seed(seed, 1, m));
      test = subset(train, held);
      train = subset(train, keep);
    }
    auto [tr, va] = split(train.labels(), groups_of(train), grouped, cfg.val_fraction, mix_seed(seed, 2, m));
    d.modalities.push_back(src.name);
    d.tasks.push_back(src.name);
    d.classes.push_back(train.classes);
    d.grouped.push_back(grouped);
    d.val.push_back(subset(train, va));
    d.train.push_back(subset(train, tr));
    d.test.push_back(test);
  }
  return d;
}

PreparedData cv_fold(const PreparedData& d, int folds_k, int fold, double val_fraction, uint64_t seed) {
  PreparedData f = d;
  const auto f64 = static_cast<uint64_t>(fold);
  auto grouped = [&](size_t m) { return m < d.grouped.size() && d.grouped[m]; };
  if (d.paired) {
    std::vector<PairedRecord> pool = d.cases_train;
    pool.insert(pool.end(), d.cases_val.begin(), d.cases_val.end());
    const auto which = folds(strata(pool), groups_of(pool), grouped(0), folds_k, mix_seed(seed, 0xCF));
    std::vector<PairedRecord> rest;
    f.cases_test.clear();
    for (size_t i = 0; i < pool.size(); ++i) (which[i] == fold ? f.cases_test : rest).push_back(pool[i]);
    auto [tr, va] = split(strata(rest), groups_of(rest), grouped(0), val_fraction, mix_seed(seed, 2, 0xCF, f64));
    f.cases_train.clear();
    f.cases_val.clear();
    for (auto i : tr) f.cases_train.push_back(rest[i]);
    for (auto i : va) f.cases_val.push_back(rest[i]);
    return f;
  }
  for (size_t m = 0; m < d.train.size(); ++m) {
    ModalitySet pool = d.train[m];
    pool.records.insert(pool.records.end(), d.val[m].records.begin(), d.val[m].records.end());
    const auto which = folds(pool.labels(), groups_of(pool), grouped(m), folds_k, mix_seed(seed, 0xCF, m));
    std::vector<size_t> in, out;
    for (size_t i = 0; i < which.size(); ++i) (which[i] == fold ? in : out).push_back(i);
    f.test[m] = subset(pool, in);
    const ModalitySet rest = subset(pool, out);
    auto [tr, va] = split(rest.labels(), groups_of(rest), grouped(m), val_fraction, mix_seed(seed, 2, m, 0xCF00 + f64));
    f.train[m] = subset(rest, tr);
    f.val[m] = subset(rest, va);
  }
  return f;
}

std::vector<std::vector<int64_t>> PreparedData::train_labels() const {
  std::vector<std::vector<int64_t>> y(tasks.size());
  if (paired) {
    for (const auto& c : cases_train)
      for (size_t t = 0; t < y.size(); ++t) y[t].push_back(c.labels[t]);
  } else {
    for (size_t m = 0; m < train.size(); ++m) y[m] = train[m].labels();
  }
  return y;
}

std::vector<Example> PreparedData::train_examples(uint64_t seed, int64_t epoch, bool balanced) const {
  std::vector<Example> out;
  if (paired) {
    const uint64_t epoch_seed = mix_seed(seed, 0xCA5E, static_cast<uint64_t>(epoch));
    std::vector<size_t> order;
    if (balanced) {
      order = balanced_order(strata(cases_train), cases_train.size(), epoch_seed);
    } else {
      order.resize(cases_train.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::mt19937_64 rng(epoch_seed);
      std::shuffle(order.begin(), order.end(), rng);
    }
    for (auto i : order) out.push_back({cases_train[i].paths, cases_train[i].labels, cases_train[i].group});
    return out;
  }
  std::vector<size_t> sizes;
  for (const auto& s : train) sizes.push_back(s.records.size());
  for (const auto& tuple : balanced ? balanced_epoch_pairing(train_labels(), seed, epoch) : epoch_pairing(sizes, seed, epoch)) {
    Example e;
    for (size_t m = 0; m < tuple.size(); ++m) {
      e.paths.push_back(train[m].records[tuple[m]].path);
      e.labels.push_back(train[m].records[tuple[m]].label);  // task m belongs to modality m
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<Example> PreparedData::eval_examples(const std::string& part, uint64_t seed) const {
  std::vector<Example> out;
  if (paired) {
    for (const auto& c : part == "val" ? cases_val : cases_test) out.push_back({c.paths, c.labels, c.group});
    return out;
  }
  const auto& sets = part == "val" ? val : test;
  std::vector<size_t> sizes;
  for (const auto& s : sets) sizes.push_back(s.records.size());
  for (size_t t = 0; t < sets.size(); ++t) {
    for (const auto& tuple : eval_pairing(sizes, t, mix_seed(seed, part == "val" ? 3 : 4))) {
      Example e;
      e.labels.assign(sets.size(), -1);
      for (size_t m = 0; m < tuple.size(); ++m) e.paths.push_back(sets[m].records[tuple[m]].path);
      e.labels[t] = sets[t].records[tuple[t]].label;
      const auto& anchor = sets[t].records[tuple[t]];
      if (anchor.group != anchor.path) e.group = anchor.group;
      out.push_back(std::move(e));
    }
  }
  return out;
}

std::vector<std::string> PreparedData::all_paths() const {
  std::set<std::string> s;
  for (const auto* v : {&train, &val, &test})
    for (const auto& ms : *v)
      for (const auto& r : ms.records) s.insert(r.path);
  for (const auto* v : {&cases_train, &cases_val, &cases_test})
    for (const auto& c : *v) s.insert(c.paths.begin(), c.paths.end());
  return {s.begin(), s.end()};
}

nlohmann::json PreparedData::to_json() const {
  nlohmann::json j{{"paired", paired}, {"modalities", modalities}, {"tasks", tasks}, {"classes", classes}};
  if (any_grouped()) j["grouped"] = grouped;
  if (paired) {
    j["train"] = cases_json(cases_train);
    j["val"] = cases_json(cases_val);
    j["test"] = cases_json(cases_test);
  } else {
    for (const char* part : {"train", "val", "test"}) {
      const auto& sets = std::string(part) == "train" ? train : std::string(part) == "val" ? val : test;
      nlohmann::json a = nlohmann::json::array();
      for (const auto& s : sets) a.push_back(records_json(s));
      j[part] = a;
    }
  }
  return j;
}

PreparedData PreparedData::from_json(const nlohmann::json& j, const std::string& source) {
  namespace L = settings::limits;
  settings::Table t(j, source);
  t.require({"paired", "modalities", "tasks", "classes", "train", "val", "test"});
  t.allow("grouped");
  PreparedData d;
  d.paired = t.boolean("paired", false);
  d.modalities = t.names("modalities", {}, L::kModalities, true);
  d.tasks = t.names("tasks", {}, L::kTasks, true);
  d.classes = t.name_lists("classes", L::kTasks, L::kClasses);
  const size_t M = d.modalities.size(), T = d.tasks.size();
  // Older runs have no groups: each image its own, splits by image.
  const size_t sources = d.paired ? 1 : M;
  if (t.has("grouped")) {
    const auto& g = t.raw("grouped");
    if (!g.is_array() || g.size() != sources || !std::all_of(g.begin(), g.end(), [](const auto& v) { return v.is_boolean(); }))
      t.fail("grouped", "found " + settings::show(g) + ", allowed one true/false per " + (d.paired ? "manifest (1)" : "modality (" + std::to_string(M) + ")"));
    for (const auto& v : g) d.grouped.push_back(v.get<bool>());
  } else {
    d.grouped.assign(sources, false);
  }
  if (d.classes.size() != T)
    t.fail("classes", "found " + std::to_string(d.classes.size()) + " class lists, allowed one per task (" + std::to_string(T) + ")");
  for (size_t k = 0; k < T; ++k)
    if (d.classes[k].size() < 2) t.fail("classes[" + std::to_string(k) + "]", "found fewer than 2 classes, allowed 2 or more");
  if (!d.paired && T != M)
    t.fail("tasks", "found " + std::to_string(T) + " tasks for " + std::to_string(M) +
                        " modalities, allowed one task per modality (unpaired data)");
  auto check_path = [&](const nlohmann::json& v, const std::string& key) {
    if (!v.is_string() || v.get_ref<const std::string&>().empty() ||
        v.get_ref<const std::string&>().find('\0') != std::string::npos)
      throw Error(source + ": " + key + ": found " + settings::show(v) + ", allowed an image path");
    return v.get<std::string>();
  };
  auto check_label = [&](const nlohmann::json& v, const std::string& key, size_t task, bool allow_unknown) {
    const int64_t lo = allow_unknown ? -1 : 0, hi = static_cast<int64_t>(d.classes[task].size()) - 1;
    if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
      throw Error(source + ": " + key + ": found " + settings::show(v) + ", allowed a label from " + std::to_string(lo) +
                  " to " + std::to_string(hi) + " (task " + d.tasks[task] + ")");
    return v.get<int64_t>();
  };
  for (const char* part : {"train", "val", "test"}) {
    const auto& a = t.raw(part);
    if (!a.is_array()) t.fail(part, "found " + settings::show(a) + ", allowed a list");
    if (d.paired) {
      auto& cases = std::string(part) == "train" ? d.cases_train : std::string(part) == "val" ? d.cases_val : d.cases_test;
      if (a.empty()) t.fail(part, "found no cases, allowed at least one");
      for (size_t i = 0; i < a.size(); ++i) {
        const std::string where = std::string(part) + "[" + std::to_string(i) + "]";
        settings::Table c(a[i], source, where);
        c.require({"paths", "labels"});
        c.allow("group");
        const auto& paths = c.raw("paths");
        const auto& labels = c.raw("labels");
        if (!paths.is_array() || paths.size() != M)
          c.fail("paths", "found " + settings::show(paths) + ", allowed one image path per modality (" + std::to_string(M) + ")");
        if (!labels.is_array() || labels.size() != T)
          c.fail("labels", "found " + settings::show(labels) + ", allowed one label per task (" + std::to_string(T) + ")");
        PairedRecord rec;
        for (size_t m = 0; m < M; ++m) rec.paths.push_back(check_path(paths[m], where + ".paths[" + std::to_string(m) + "]"));
        for (size_t k = 0; k < T; ++k)
          rec.labels.push_back(check_label(labels[k], where + ".labels[" + std::to_string(k) + "]", k, true));
        if (c.has("group")) rec.group = c.string("group", "", false);
        c.finish();
        cases.push_back(std::move(rec));
      }
      continue;
    }
    auto& sets = std::string(part) == "train" ? d.train : std::string(part) == "val" ? d.val : d.test;
    if (a.size() != M)
      t.fail(part, "found " + std::to_string(a.size()) + " record lists, allowed one per modality (" + std::to_string(M) + ")");
    for (size_t m = 0; m < M; ++m) {
      const std::string where = std::string(part) + "[" + std::to_string(m) + "]";
      if (!a[m].is_array() || a[m].empty())
        throw Error(source + ": " + where + ": found " + settings::show(a[m]) + ", allowed a non-empty list of [path, label] records");
      ModalitySet set;
      set.name = d.modalities[m];
      set.classes = d.classes[m];
      for (size_t i = 0; i < a[m].size(); ++i) {
        const auto& r = a[m][i];
        const std::string rw = where + "[" + std::to_string(i) + "]";
        if (!r.is_array() || r.size() < 2 || r.size() > 3 || (r.size() == 3 && (!r[2].is_string() || r[2].get_ref<const std::string&>().empty())))
          throw Error(source + ": " + rw + ": found " + settings::show(r) + ", allowed [path, label] or [path, label, group]");
        const auto path = check_path(r[0], rw + "[0]");
        set.records.push_back({path, check_label(r[1], rw + "[1]", m, false), r.size() == 3 ? r[2].get<std::string>() : path});
      }
      sets.push_back(std::move(set));
    }
  }
  t.finish();
  return d;
}

void verify_prepared(PreparedData& d, ImageCache& cache, const DataConfig& cfg, std::vector<std::string>& warnings) {
  auto paths = d.all_paths();
  auto errors = verify_images(paths, cache, cfg.workers);
  if (errors.empty()) return check_duplicates(d, cache, cfg, warnings);
  if (!cfg.skip_bad) {
    std::string msg = errors.front();
    if (errors.size() > 1) msg += " (and " + std::to_string(errors.size() - 1) + " more bad images; --skip-bad drops them)";
    throw Error(msg);
  }
  std::set<std::string> bad;
  for (const auto& e : errors) {
    warnings.push_back("skipped " + e);
    bad.insert(e.substr(0, e.find(": ")));
  }
  auto drop = [&](std::vector<ModalitySet>& sets, const char* part) {
    for (auto& s : sets) {
      s.records.erase(std::remove_if(s.records.begin(), s.records.end(), [&](const Record& r) { return bad.count(r.path) > 0; }),
                      s.records.end());
      if (std::string(part) == "train") {
        auto counts = s.class_counts();
        for (size_t k = 0; k < counts.size(); ++k)
          if (counts[k] == 0)
            throw Error(s.name + ": class '" + s.classes[k] + "' has no readable training image left after skipping bad files");
      }
      if (s.records.empty()) throw Error(s.name + ": no readable images left in the " + part + " part");
    }
  };
  drop(d.train, "train");
  drop(d.val, "val");
  drop(d.test, "test");
  for (auto* v : {&d.cases_train, &d.cases_val, &d.cases_test})
    v->erase(std::remove_if(v->begin(), v->end(),
                            [&](const PairedRecord& c) {
                              return std::any_of(c.paths.begin(), c.paths.end(), [&](const std::string& p) { return bad.count(p) > 0; });
                            }),
             v->end());
  warnings.push_back(std::to_string(errors.size()) + " bad images skipped");
  check_duplicates(d, cache, cfg, warnings);
}

void check_duplicates(const PreparedData& d, ImageCache& cache, const DataConfig& cfg, std::vector<std::string>& warnings) {
  const auto dups = find_duplicates(d, cache);
  if (dups.empty()) return;
  if (!cfg.allow_duplicates)
    throw Error("leak: " + describe(dups.front()) +
                (dups.size() > 1 ? " (and " + std::to_string(dups.size() - 1) + " more pairs)" : std::string()) +
                "; the same image in two parts inflates the test metrics. Remove the copies, name the groups "
                "(group_column, group_pattern, group_folders), or pass --allow-duplicates to go on with a warning");
  for (const auto& x : dups) warnings.push_back("duplicate " + describe(x));
  warnings.push_back(std::to_string(dups.size()) + " duplicate pairs across parts allowed (--allow-duplicates)");
}

namespace {
uint64_t pixel_hash(const cv::Mat& m) {
  uint64_t h = 0xCBF29CE484222325ull;
  auto mix = [&](const unsigned char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001B3ull;
  };
  const int head[3] = {m.rows, m.cols, m.type()};
  mix(reinterpret_cast<const unsigned char*>(head), sizeof head);
  const size_t row = m.cols * m.elemSize();
  for (int r = 0; r < m.rows; ++r) mix(m.ptr<unsigned char>(r), row);
  return h;
}

// Per modality, the (part, path) lists of that modality's images.
std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> images_by_modality(const PreparedData& d) {
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> out;
  for (size_t m = 0; m < d.modalities.size(); ++m) {
    std::vector<std::pair<std::string, std::string>> v;
    for (const auto& part : d.parts()) {
      if (d.paired)
        for (const auto& c : part.cases) v.emplace_back(part.name, c.paths[m]);
      else
        for (const auto& r : part.sets[m].records) v.emplace_back(part.name, r.path);
    }
    out.emplace_back(d.modalities[m], std::move(v));
  }
  return out;
}
}  // namespace

std::vector<Duplicate> find_duplicates(const PreparedData& d, ImageCache& cache) {
  std::vector<Duplicate> out;
  for (const auto& [modality, images] : images_by_modality(d)) {
    std::map<uint64_t, std::map<std::string, std::string>> seen;  // hash -> part -> first path
    for (const auto& [part, path] : images) {
      cv::Mat px;
      try {
        px = cache.get(path);
      } catch (const Error&) {
        continue;  // unreadable: reported by verify_images, not a duplicate
      }
      // A blank image (every pixel alike: the air above a head, a padded slice) identifies no
      // patient; two of them in two parts are no leak.
      double lo, hi;
      cv::minMaxLoc(px.reshape(1), &lo, &hi);
      if (lo == hi) continue;
      seen[pixel_hash(px)].emplace(part, path);
    }
    for (const auto& [h, parts] : seen) {
      if (parts.size() < 2) continue;
      // Report each pair of parts once, with a file from each.
      for (auto a = parts.begin(); a != parts.end(); ++a)
        for (auto b = std::next(a); b != parts.end(); ++b) out.push_back({modality, a->first, a->second, b->first, b->second});
    }
  }
  return out;
}

std::string describe(const Duplicate& x) {
  return x.modality + ": the same pixels in " + x.part_a + " (" + x.path_a + ") and " + x.part_b + " (" + x.path_b + ")";
}

std::vector<GroupCounts> group_counts(const PreparedData& d) {
  std::vector<GroupCounts> out;
  auto count = [](GroupCounts& gc, const std::vector<std::pair<std::string, std::pair<std::string, int64_t>>>& items) {
    // items: (part, (group, label))
    std::map<std::string, std::set<std::string>> parts;
    std::map<std::string, std::set<int64_t>> labels;
    for (const auto& [part, gl] : items) {
      parts[gl.first].insert(part);
      labels[gl.first].insert(gl.second);
    }
    for (const auto& [g, ps] : parts) {
      gc.train_groups += ps.count("train");
      gc.val_groups += ps.count("val");
      gc.test_groups += ps.count("test");
      if (labels[g].size() > 1) gc.mixed++;
      if (ps.size() > 1) {
        gc.spanning++;
        if (gc.example.empty()) gc.example = g;
      }
    }
  };
  if (d.paired) {
    GroupCounts gc;
    gc.modality = "cases";
    std::vector<std::pair<std::string, std::pair<std::string, int64_t>>> items;
    size_t row = 0;
    for (const auto& part : d.parts())
      for (const auto& c : part.cases) items.push_back({part.name, {c.group.empty() ? "\x01" + std::to_string(row++) : c.group, c.labels[0]}});
    count(gc, items);
    out.push_back(gc);
    return out;
  }
  for (size_t m = 0; m < d.modalities.size(); ++m) {
    GroupCounts gc;
    gc.modality = d.modalities[m];
    std::vector<std::pair<std::string, std::pair<std::string, int64_t>>> items;
    for (const auto& part : d.parts())
      for (const auto& r : part.sets[m].records) items.push_back({part.name, {r.group, r.label}});
    count(gc, items);
    out.push_back(gc);
  }
  return out;
}

}  // namespace drifa::data
