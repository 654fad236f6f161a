#include "drifa/data/sources.h"

#include <algorithm>
#include <filesystem>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "drifa/data/split.h"
#include "drifa/error.h"

namespace fs = std::filesystem;

namespace drifa::data {

namespace {

std::string abs_path(const std::string& p, const std::string& base) {
  if (p.empty()) return p;
  fs::path fp(p);
  return (fp.is_absolute() ? fp : fs::path(base) / fp).lexically_normal().string();
}

template <typename T>
T get_or(const nlohmann::json& j, const char* key, T def) {
  return j.contains(key) ? j.at(key).get<T>() : def;
}

void check_keys(const nlohmann::json& j, const std::string& where, std::initializer_list<const char*> known) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const char* k : known) ok = ok || it.key() == k;
    if (!ok) throw Error(where + ": unknown key '" + it.key() + "'");
  }
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
  for (const auto& r : s.records) a.push_back({r.path, r.label});
  return a;
}

ModalitySet records_from(const nlohmann::json& a, const std::string& name, const std::vector<std::string>& classes) {
  ModalitySet s;
  s.name = name;
  s.classes = classes;
  for (const auto& r : a) s.records.push_back({r.at(0).get<std::string>(), r.at(1).get<int64_t>()});
  return s;
}

nlohmann::json cases_json(const std::vector<PairedRecord>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& r : v) a.push_back({{"paths", r.paths}, {"labels", r.labels}});
  return a;
}

std::vector<PairedRecord> cases_from(const nlohmann::json& a) {
  std::vector<PairedRecord> v;
  for (const auto& r : a)
    v.push_back({r.at("paths").get<std::vector<std::string>>(), r.at("labels").get<std::vector<int64_t>>()});
  return v;
}

// Stratify paired cases on their first task's label (unknown labels form their own stratum).
std::vector<int64_t> strata(const std::vector<PairedRecord>& cases) {
  std::vector<int64_t> y;
  for (const auto& c : cases) y.push_back(c.labels[0]);
  return y;
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
    mods.push_back(j);
  }
  nlohmann::json j{{"val_fraction", val_fraction}, {"test_fraction", test_fraction}, {"image_size", image_size},
                   {"channels", channels},         {"min_side", min_side},           {"workers", workers},
                   {"skip_bad", skip_bad}};
  if (dicom.window_center) j["window_center"] = *dicom.window_center;
  if (dicom.window_width) j["window_width"] = *dicom.window_width;
  if (paired) {
    j["paired"] = {{"manifest", paired_spec.csv},
                   {"images", paired_spec.image_columns},
                   {"labels", paired_spec.label_columns},
                   {"path_template", paired_spec.path_template}};
    if (!paired_test_csv.empty()) j["paired"]["test_manifest"] = paired_test_csv;
  } else {
    j["modality"] = mods;
  }
  return j;
}

DataConfig DataConfig::from_json(const nlohmann::json& j, const std::string& base) {
  DataConfig c;
  try {
    check_keys(j, "[data]", {"val_fraction", "test_fraction", "image_size", "channels", "min_side", "workers", "skip_bad",
                             "window_center", "window_width", "paired", "modality"});
    c.val_fraction = get_or(j, "val_fraction", c.val_fraction);
    c.test_fraction = get_or(j, "test_fraction", c.test_fraction);
    c.image_size = get_or(j, "image_size", c.image_size);
    c.channels = get_or(j, "channels", c.channels);
    c.min_side = get_or(j, "min_side", c.min_side);
    c.workers = get_or(j, "workers", c.workers);
    c.skip_bad = get_or(j, "skip_bad", c.skip_bad);
    if (j.contains("window_center")) c.dicom.window_center = j["window_center"].get<double>();
    if (j.contains("window_width")) c.dicom.window_width = j["window_width"].get<double>();
    if (j.contains("paired")) {
      const auto& p = j["paired"];
      check_keys(p, "[data.paired]", {"manifest", "images", "labels", "path_template", "test_manifest", "classes"});
      c.paired = true;
      c.paired_spec.csv = abs_path(p.at("manifest").get<std::string>(), base);
      c.paired_spec.image_columns = p.at("images").get<std::vector<std::string>>();
      c.paired_spec.label_columns = p.at("labels").get<std::vector<std::string>>();
      c.paired_spec.path_template = get_or<std::string>(p, "path_template", "{}");
      if (p.contains("classes")) c.paired_spec.classes = p["classes"].get<std::vector<std::vector<std::string>>>();
      c.paired_test_csv = abs_path(get_or<std::string>(p, "test_manifest", ""), base);
    }
    if (j.contains("modality")) {
      if (c.paired) throw Error("[data]: give either [data.paired] or [[data.modality]] entries, not both");
      for (const auto& m : j["modality"]) {
        check_keys(m, "[[data.modality]]", {"name", "train", "test", "manifest", "path_column", "label_column",
                                            "path_template", "classes", "test_manifest"});
        ModalitySource s;
        s.name = m.at("name").get<std::string>();
        s.train = abs_path(get_or<std::string>(m, "train", ""), base);
        s.test = abs_path(get_or<std::string>(m, "test", ""), base);
        s.manifest.csv = abs_path(get_or<std::string>(m, "manifest", ""), base);
        s.manifest.path_column = get_or<std::string>(m, "path_column", "path");
        s.manifest.label_column = get_or<std::string>(m, "label_column", "label");
        s.manifest.path_template = get_or<std::string>(m, "path_template", "{}");
        s.manifest.classes = get_or<std::vector<std::string>>(m, "classes", {});
        s.test_manifest = abs_path(get_or<std::string>(m, "test_manifest", ""), base);
        if (s.train.empty() == s.manifest.csv.empty())
          throw Error("[[data.modality]] '" + s.name + "': give exactly one of train (class folders) or manifest (CSV)");
        c.modalities.push_back(s);
      }
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("[data]: missing or wrong-typed value: ") + e.what());
  }
  if (!c.paired && c.modalities.size() < 2)
    throw Error("[data]: at least 2 modalities are needed ([[data.modality]] entries or [data.paired])");
  if (!(c.val_fraction > 0 && c.val_fraction < 1)) throw Error("[data]: val_fraction must be in (0, 1)");
  if (!(c.test_fraction > 0 && c.test_fraction < 1)) throw Error("[data]: test_fraction must be in (0, 1)");
  if (c.channels != 1 && c.channels != 3) throw Error("[data]: channels must be 1 or 3");
  if (c.image_size < 16) throw Error("[data]: image_size must be >= 16");
  return c;
}

PreparedData prepare_data(const DataConfig& cfg, uint64_t seed) {
  PreparedData d;
  d.paired = cfg.paired;
  if (cfg.paired) {
    auto all = load_paired_manifest(cfg.paired_spec);
    d.modalities = all.modalities;
    d.tasks = all.tasks;
    d.classes = all.classes;
    std::vector<PairedRecord> pool = all.records;
    if (!cfg.paired_test_csv.empty()) {
      PairedSpec ts = cfg.paired_spec;
      ts.csv = cfg.paired_test_csv;
      ts.classes = all.classes;  // the training label sets; an unknown test label is an error
      d.cases_test = load_paired_manifest(ts).records;
    } else {
      auto [keep, held] = stratified_split(strata(pool), cfg.test_fraction, mix_seed(seed, 1));
      for (auto i : held) d.cases_test.push_back(pool[i]);
      std::vector<PairedRecord> rest;
      for (auto i : keep) rest.push_back(pool[i]);
      pool = rest;
    }
    auto [tr, va] = stratified_split(strata(pool), cfg.val_fraction, mix_seed(seed, 2));
    for (auto i : tr) d.cases_train.push_back(pool[i]);
    for (auto i : va) d.cases_val.push_back(pool[i]);
    return d;
  }
  for (size_t m = 0; m < cfg.modalities.size(); ++m) {
    const auto& src = cfg.modalities[m];
    ModalitySet train = src.manifest.csv.empty() ? load_class_folders(src.train, src.name)
                                                 : load_manifest(src.manifest, src.name);
    const std::string train_src = src.manifest.csv.empty() ? src.train : src.manifest.csv;
    ModalitySet test;
    if (!src.test.empty() || !src.test_manifest.empty()) {
      ManifestSpec ts = src.manifest;
      ts.csv = src.test_manifest;
      if (!src.test_manifest.empty()) ts.classes = {};
      test = src.test.empty() ? load_manifest(ts, src.name) : load_class_folders(src.test, src.name);
      align_classes(train, test, train_src, src.test.empty() ? src.test_manifest : src.test);
    } else {
      auto [keep, held] = stratified_split(train.labels(), cfg.test_fraction, mix_seed(seed, 1, m));
      test = subset(train, held);
      train = subset(train, keep);
    }
    auto [tr, va] = stratified_split(train.labels(), cfg.val_fraction, mix_seed(seed, 2, m));
    d.modalities.push_back(src.name);
    d.tasks.push_back(src.name);
    d.classes.push_back(train.classes);
    d.val.push_back(subset(train, va));
    d.train.push_back(subset(train, tr));
    d.test.push_back(test);
  }
  return d;
}

std::vector<Example> PreparedData::train_examples(uint64_t seed, int64_t epoch) const {
  std::vector<Example> out;
  if (paired) {
    std::vector<size_t> order(cases_train.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::mt19937_64 rng(mix_seed(seed, 0xCA5E, static_cast<uint64_t>(epoch)));
    std::shuffle(order.begin(), order.end(), rng);
    for (auto i : order) out.push_back({cases_train[i].paths, cases_train[i].labels});
    return out;
  }
  std::vector<size_t> sizes;
  for (const auto& s : train) sizes.push_back(s.records.size());
  for (const auto& tuple : epoch_pairing(sizes, seed, epoch)) {
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
    for (const auto& c : part == "val" ? cases_val : cases_test) out.push_back({c.paths, c.labels});
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

PreparedData PreparedData::from_json(const nlohmann::json& j) {
  PreparedData d;
  try {
    d.paired = j.at("paired").get<bool>();
    d.modalities = j.at("modalities").get<std::vector<std::string>>();
    d.tasks = j.at("tasks").get<std::vector<std::string>>();
    d.classes = j.at("classes").get<std::vector<std::vector<std::string>>>();
    if (d.paired) {
      d.cases_train = cases_from(j.at("train"));
      d.cases_val = cases_from(j.at("val"));
      d.cases_test = cases_from(j.at("test"));
    } else {
      for (size_t m = 0; m < d.modalities.size(); ++m) {
        d.train.push_back(records_from(j.at("train").at(m), d.modalities[m], d.classes[m]));
        d.val.push_back(records_from(j.at("val").at(m), d.modalities[m], d.classes[m]));
        d.test.push_back(records_from(j.at("test").at(m), d.modalities[m], d.classes[m]));
      }
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("split record is malformed: ") + e.what());
  }
  return d;
}

void verify_prepared(PreparedData& d, ImageCache& cache, const DataConfig& cfg, std::vector<std::string>& warnings) {
  auto paths = d.all_paths();
  auto errors = verify_images(paths, cache, cfg.workers);
  if (errors.empty()) return;
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
}

}  // namespace drifa::data
