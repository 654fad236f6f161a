#include "drifa/runs/files.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include "drifa/runs/model_file.h"
#include "drifa/data/csv.h"
#include "drifa/error.h"
#include "drifa/inference/method.h"
#include "drifa/io/config_file.h"
#include "drifa/io/settings.h"

namespace fs = std::filesystem;

namespace drifa::runs::files {

namespace {

using settings::IntRange;
using settings::RealRange;
using settings::Table;

constexpr RealRange kUnit{0.0, 1.0};
constexpr RealRange kNonNegative{0.0, 1e300};
constexpr RealRange kAnyFinite{-1e300, 1e300};
constexpr IntRange kCount{0, std::numeric_limits<int64_t>::max()};
constexpr IntRange kListSize{0, 10000000};

// A JSON file of a run, parsed (duplicate keys refused) and required to be an object.
nlohmann::json read_object(const std::string& file) {
  auto j = io::read_json(file);
  if (!j.is_object()) throw Error(file + ": found " + settings::show(j) + ", allowed a JSON object");
  return j;
}

// A "group_level" block under parent (one prediction per patient, lesion or volume: metrics.json,
// cv_metrics.json, uq.json), when present: what the CLI and the report read from it.
void check_group_level(const nlohmann::json& parent, const std::string& file, const std::string& where) {
  if (!parent.is_object() || !parent.contains("group_level")) return;
  Table g(parent["group_level"], file, where + ".group_level");
  g.require({"groups", "aggregate", "accuracy", "balanced_accuracy", "macro_f1", "roc_auc_macro"});
  g.integer("groups", 1, kCount);
  g.choice("aggregate", "mean", {"mean", "max"});
  for (const char* k : {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc_macro"}) g.real_or_null(k, kUnit);
  if (g.has("ece")) g.real_or_null("ece", kUnit);
  if (g.has("nll")) g.real_or_null("nll", kNonNegative);
}

double csv_number(const std::string& cell, const std::string& file, size_t row, const std::string& column, bool allow_nan) {
  if (allow_nan && (cell.empty() || cell == "null")) return std::nan("");
  try {
    size_t used = 0;
    const double v = std::stod(cell, &used);
    if (used == cell.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw Error(file + ": row " + std::to_string(row + 2) + ", column " + column + ": found " + settings::show(cell) +
              ", allowed a finite number");
}

}  // namespace

std::string path(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }
std::string path(const std::string& dir, const std::string& sub, const std::string& name) {
  return (fs::path(dir) / sub / name).string();
}

std::string inside(const std::string& dir, const std::string& rel, const std::string& source, const std::string& key) {
  auto refuse = [&](const std::string& why) {
    throw Error(source + ": " + key + ": found " + settings::show(rel) + ", allowed " + why);
  };
  if (rel.empty() || rel.find('\0') != std::string::npos) refuse("a non-empty file name");
  const fs::path p(rel);
  if (p.is_absolute() || p.has_root_name() || p.has_root_directory()) refuse("a path relative to " + dir);
  for (const auto& part : p)
    if (part == "..") refuse("a path inside " + dir + " (no '..')");
  std::error_code ec;
  const auto base = fs::weakly_canonical(fs::absolute(dir), ec);
  const auto full = fs::weakly_canonical(fs::absolute(dir) / p, ec);
  if (ec) refuse("a path that can be resolved inside " + dir);
  const auto rel_to = full.lexically_relative(base);
  if (rel_to.empty() || *rel_to.begin() == "..") refuse("a path inside " + dir + " (it leads elsewhere through a link)");
  return full.string();
}

Done read_done(const std::string& run_dir) {
  const auto file = path(run_dir, kDone);
  const auto j = read_object(file);
  Table t(j, file);
  t.require({"best_epoch", "best_val_loss"});
  Done d;
  d.best_epoch = t.integer("best_epoch", 0, {0, settings::limits::kEpochs.hi});
  d.best_val_loss = t.real("best_val_loss", 0, kNonNegative);
  return d;
}

EnsembleManifest read_ensemble(const std::string& dir) {
  const auto file = path(dir, kEnsemble);
  const auto j = read_object(file);
  Table t(j, file);
  t.require({"config", "members"});
  EnsembleManifest m;
  m.config = t.raw("config");
  if (!m.config.is_object()) t.fail("config", "found " + settings::show(m.config) + ", allowed a table");
  m.members = t.names("members", {}, settings::limits::kEnsembleMembers, true);
  for (size_t k = 0; k < m.members.size(); ++k)
    inside(dir, m.members[k], file, "members[" + std::to_string(k) + "]");
  for (const auto& n : m.members)
    if (n.find('/') != std::string::npos) t.fail("members", "found " + settings::show(n) + ", allowed plain folder names");
  return m;
}

CvManifest read_cv(const std::string& dir) {
  const auto file = path(dir, kCv);
  const auto j = read_object(file);
  Table t(j, file);
  t.require({"config", "folds", "members"});
  CvManifest m;
  m.config = t.raw("config");
  if (!m.config.is_object()) t.fail("config", "found " + settings::show(m.config) + ", allowed a table");
  m.folds = t.integer("folds", 0, settings::limits::kFolds);
  m.members = t.names("members", {}, {m.folds, m.folds}, true);
  for (size_t k = 0; k < m.members.size(); ++k) {
    inside(dir, m.members[k], file, "members[" + std::to_string(k) + "]");
    if (m.members[k].find('/') != std::string::npos)
      t.fail("members", "found " + settings::show(m.members[k]) + ", allowed plain folder names");
  }
  t.finish();
  return m;
}

nlohmann::json read_cv_metrics(const std::string& dir) {
  const auto file = path(dir, kCvMetrics);
  const auto j = read_object(file);
  Table top(j, file);
  top.require({"folds", "tasks"});
  const int64_t folds = top.integer("folds", 0, settings::limits::kFolds);
  const auto& tasks = top.raw("tasks");
  if (!tasks.is_object()) top.fail("tasks", "found " + settings::show(tasks) + ", allowed a table with one entry per task");
  const char* keys[] = {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc_macro", "ece"};
  for (auto it = tasks.begin(); it != tasks.end(); ++it) {
    Table task(it.value(), file, "tasks." + it.key());
    task.require({"folds", "mean_sd", "pooled"});
    for (auto& f : task.tables("folds", {folds, folds}))
      for (const char* k : keys) f.real_or_null(k, kUnit);
    Table pooled = task.table("pooled");
    for (const char* k : keys) pooled.real_or_null(k, kUnit);
    check_group_level(it.value()["pooled"], file, "tasks." + it.key() + ".pooled");
    if (it.value().contains("holdout") && it.value()["holdout"].is_object())
      check_group_level(it.value()["holdout"].value("average", nlohmann::json()), file, "tasks." + it.key() + ".holdout.average");
    Table mean_sd = task.table("mean_sd");
    for (const char* k : keys)
      if (mean_sd.has(k)) {
        Table m = mean_sd.table(k);
        m.require({"mean", "sd"});
        m.real("mean", 0, kUnit);
        m.real("sd", 0, kUnit);
      }
  }
  return j;
}

nlohmann::json read_log_json(const std::string& run_dir) {
  const auto file = path(run_dir, kLogJson);
  auto j = io::read_json(file);
  if (!j.is_array()) throw Error(file + ": found " + settings::show(j) + ", allowed a list of epoch records");
  int64_t last = 0;
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_object()) throw Error(file + ": [" + std::to_string(i) + "]: found " + settings::show(j[i]) + ", allowed an epoch record");
    Table t(j[i], file, "[" + std::to_string(i) + "]");
    t.require({kColEpoch});
    const int64_t e = t.integer(kColEpoch, 0, {last + 1, settings::limits::kEpochs.hi});
    last = e;
  }
  return j;
}

LogTable read_log_csv(const std::string& run_dir) {
  const auto file = path(run_dir, kLogCsv);
  const auto t = data::read_csv(file);
  const int ce = t.column(kColEpoch, file), ct = t.column(kColTrainLoss, file), cv = t.column(kColValLoss, file);
  LogTable log;
  std::vector<int> acc_cols;
  for (size_t c = 0; c < t.header.size(); ++c)
    if (t.header[c].rfind(kColValAccPrefix, 0) == 0) {
      acc_cols.push_back(static_cast<int>(c));
      log.acc_tasks.push_back(t.header[c].substr(8));
    }
  log.val_acc.resize(acc_cols.size());
  for (size_t r = 0; r < t.rows.size(); ++r) {
    const auto& row = t.rows[r];
    log.epoch.push_back(csv_number(row[ce], file, r, kColEpoch, false));
    log.train_loss.push_back(csv_number(row[ct], file, r, kColTrainLoss, true));
    log.val_loss.push_back(csv_number(row[cv], file, r, kColValLoss, true));
    for (size_t k = 0; k < acc_cols.size(); ++k) {
      const double a = csv_number(row[acc_cols[k]], file, r, t.header[acc_cols[k]], true);
      if (!std::isnan(a) && (a < 0 || a > 1))
        throw Error(file + ": row " + std::to_string(r + 2) + ", column " + t.header[acc_cols[k]] + ": found " +
                    settings::show(a) + ", allowed an accuracy in [0, 1]");
      log.val_acc[k].push_back(a);
    }
  }
  return log;
}

namespace {

// The per-task table of a metrics row: metrics in [0, 1] or null; a task not scored says why.
void check_task_rows(const nlohmann::json& tasks, const std::string& file, const std::string& key) {
  if (!tasks.is_object() || tasks.empty())
    throw Error(file + ": " + key + ": found " + settings::show(tasks) + ", allowed a table with one entry per task");
  for (auto it = tasks.begin(); it != tasks.end(); ++it) {
    Table t(it.value(), file, key + "." + it.key());
    if (t.has("scored") && !t.boolean("scored", true)) {
      t.string("reason", "");
      continue;
    }
    t.require({"accuracy"});
    for (const char* k : {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc_macro"})
      if (t.has(k)) t.real_or_null(k, kUnit);
  }
}

}  // namespace

nlohmann::json read_metrics(const std::string& run_dir) {
  const auto file = path(run_dir, kMetrics);
  const auto j = read_object(file);
  Table top(j, file);
  top.string("model", "");
  top.string("part", "test");
  top.require({"tasks"});
  const auto& tasks = top.raw("tasks");
  if (!tasks.is_object() || tasks.empty())
    top.fail("tasks", "found " + settings::show(tasks) + ", allowed a table with one entry per task");
  for (auto it = tasks.begin(); it != tasks.end(); ++it) {
    Table t(it.value(), file, "tasks." + it.key());
    t.require({"samples", "accuracy", "macro_precision", "macro_recall", "macro_f1", "roc_auc_macro", "classes", "confusion_matrix"});
    const int64_t n = t.integer("samples", 0, kCount);
    for (const char* k : {"accuracy", "macro_precision", "macro_recall", "macro_f1", "roc_auc_macro"}) t.real_or_null(k, kUnit);
    const auto classes = t.names("classes", {}, settings::limits::kClasses, false);
    const auto& cm = t.raw("confusion_matrix");
    const size_t K = classes.size();
    if (!cm.is_array() || cm.size() != K)
      t.fail("confusion_matrix", "found " + settings::show(cm) + ", allowed " + std::to_string(K) + " rows (one per class)");
    int64_t total = 0;
    for (size_t r = 0; r < K; ++r) {
      const std::string row_key = "confusion_matrix[" + std::to_string(r) + "]";
      const nlohmann::json wrap = {{row_key, cm[r]}};
      Table row(wrap, file, "tasks." + it.key());
      for (auto v : row.integers(row_key.c_str(), {}, kCount, {static_cast<int64_t>(K), static_cast<int64_t>(K)})) total += v;
    }
    if (total != n)
      t.fail("confusion_matrix", "counts " + std::to_string(total) + " samples, allowed as many as 'samples' (" + std::to_string(n) + ")");
    check_group_level(it.value(), file, "tasks." + it.key());
  }
  if (j.contains("partners")) {  // evaluate --partners
    Table p(top.raw("partners"), file, "partners");
    p.integer("bank_size", 0, settings::limits::kPartners);
    const auto& runs = p.raw("runs");
    if (!runs.is_array() || runs.empty()) p.fail("runs", "found " + settings::show(runs) + ", allowed a list of runs");
    for (size_t i = 0; i < runs.size(); ++i) {
      Table r(runs[i], file, "partners.runs[" + std::to_string(i) + "]");
      r.integer("partners", 1, settings::limits::kPartners);
      check_task_rows(r.raw("tasks"), file, "partners.runs[" + std::to_string(i) + "].tasks");
    }
  }
  return j;
}


std::optional<nlohmann::json> read_missing(const std::string& run_dir) {
  const auto file = path(run_dir, kMissing);
  if (!fs::exists(file)) return std::nullopt;
  const auto j = read_object(file);
  Table top(j, file);
  top.require({"patterns"});
  top.boolean("paired", false);
  const auto& rows = top.raw("patterns");
  if (!rows.is_array() || rows.empty()) top.fail("patterns", "found " + settings::show(rows) + ", allowed a list of patterns");
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto key = "patterns[" + std::to_string(i) + "]";
    Table row(rows[i], file, key);
    row.require({"pattern", "tasks"});
    row.string("pattern", "");
    check_task_rows(row.raw("tasks"), file, key + ".tasks");
  }
  return j;
}

std::optional<calibration::Calibration> read_calibration(const std::string& dir) {
  const auto file = path(dir, kCalibration);
  if (!fs::exists(file)) return std::nullopt;
  return calibration::Calibration::from_json(read_object(file), file);
}

nlohmann::json read_uq(const std::string& dir) {
  const auto file = path(dir, kUqDir, kUq);
  const auto j = read_object(file);
  Table top(j, file);
  top.require({"models", "passes", "tasks"});
  top.integer("models", 0, settings::limits::kEnsembleMembers);
  top.integer("passes", 0, settings::limits::kPasses);
  const auto& tasks = top.raw("tasks");
  if (!tasks.is_object()) top.fail("tasks", "found " + settings::show(tasks) + ", allowed a table with one entry per task");
  for (auto it = tasks.begin(); it != tasks.end(); ++it) {
    Table task(it.value(), file, "tasks." + it.key());
    for (const auto* method : inference::methods()) {
      const auto name = method->name();
      const char* m = name.c_str();
      if (!task.has(m)) continue;
      Table s = task.table(m);
      s.require({"metrics", "nll", "brier", "ece", "aurc", "selective", "error_auroc", "reliability"});
      check_group_level(it.value()[m], file, "tasks." + it.key() + "." + m);
      Table metrics = s.table("metrics");
      metrics.real_or_null("accuracy", kUnit);
      metrics.real_or_null("macro_f1", kUnit);
      s.real_or_null("nll", kNonNegative);
      s.real_or_null("brier", {0.0, 2.0});
      s.real_or_null("ece", kUnit);
      s.real_or_null("aurc", kUnit);
      for (auto& c : s.tables("selective", {0, 100})) {
        c.require({"coverage", "accuracy"});
        c.real("coverage", 0, kUnit);
        c.real_or_null("accuracy", kUnit);
      }
      Table e = s.table("error_auroc");
      for (const char* k : {"predictive_entropy", "mutual_information"})
        if (e.has(k)) e.real_or_null(k, kUnit);
      Table rel = s.table("reliability");
      rel.require({"bins", "count", "accuracy"});
      const int64_t bins = rel.integer("bins", 0, {1, 1000});
      rel.integers("count", {}, kCount, {bins, bins});
      rel.reals("accuracy", {}, kUnit, {bins, bins});
    }
  }
  return j;
}

std::vector<UqSample> read_uq_samples(const std::string& file) {
  const auto t = data::read_csv(file);
  const int cs = t.column(kColSample, file), ct = t.column(kColTask, file), cc = t.column(kColCorrect, file),
            ce = t.column(kColPredictiveEntropy, file), cm = t.column(kColMutualInformation, file);
  std::vector<UqSample> out;
  for (size_t r = 0; r < t.rows.size(); ++r) {
    const auto& row = t.rows[r];
    UqSample s;
    const double idx = csv_number(row[cs], file, r, kColSample, false);
    if (idx < 0 || idx != std::floor(idx) || idx > 1e15)
      throw Error(file + ": row " + std::to_string(r + 2) + ", column sample: found " + settings::show(row[cs]) +
                  ", allowed a sample index (an integer >= 0)");
    s.sample = static_cast<int64_t>(idx);
    s.task = row[ct];
    if (row[cc] != "0" && row[cc] != "1")
      throw Error(file + ": row " + std::to_string(r + 2) + ", column correct: found " + settings::show(row[cc]) + ", allowed 0 or 1");
    s.correct = row[cc] == "1";
    s.predictive_entropy = csv_number(row[ce], file, r, kColPredictiveEntropy, false);
    s.mutual_information = csv_number(row[cm], file, r, kColMutualInformation, false);
    if (s.predictive_entropy < 0 || s.mutual_information < -1e-9)
      throw Error(file + ": row " + std::to_string(r + 2) + ": an entropy below zero, allowed values >= 0 (nats)");
    s.mutual_information = std::max(0.0, s.mutual_information);
    out.push_back(std::move(s));
  }
  return out;
}

nlohmann::json read_gradcam(const std::string& dir) {
  const auto sub = path(dir, kGradcamDir);
  const auto file = path(sub, kGradcam);
  auto j = read_object(file);
  Table top(j, file);
  top.require({"stage", "images"});
  top.integer("stage", 0, {0, settings::limits::kStages.hi - 1});
  top.string("selection", "first");
  if (top.has("lesion")) {
    Table l = top.table("lesion");
    l.require({"maps", "energy_inside_mean", "uniform_mean", "pointing_hit_rate", "pointing_uniform_expectation"});
    l.integer("maps", 0, kCount);
    for (const char* k : {"energy_inside_mean", "uniform_mean", "pointing_hit_rate", "pointing_uniform_expectation"})
      l.real(k, 0, kUnit);
  }
  auto images = top.tables("images", kListSize);
  for (size_t i = 0; i < images.size(); ++i) {
    auto& e = images[i];
    e.require({"image", "path", "task", "modality", "true_label", "predicted_label", "probability"});
    const std::string where = "images[" + std::to_string(i) + "].image";
    j["images"][i]["image"] = inside(sub, e.string("image", ""), file, where);
    for (const char* k : {"path", "task", "modality", "true_label", "predicted_label"}) e.string(k, "");
    e.real("probability", 0, kUnit);
  }
  return j;
}

nlohmann::json read_tsne(const std::string& dir) {
  const auto sub = path(dir, kTsneDir);
  const auto file = path(sub, kTsne);
  auto j = read_object(file);
  Table top(j, file);
  top.require({"embeddings"});
  const auto& emb = top.raw("embeddings");
  if (!emb.is_object()) top.fail("embeddings", "found " + settings::show(emb) + ", allowed a table");
  for (auto it = j["embeddings"].begin(); it != j["embeddings"].end(); ++it) {
    Table e(it.value(), file, "embeddings." + it.key());
    e.require({"png", "samples", "perplexity", "trustworthiness"});
    it.value()["png"] = inside(sub, e.string("png", ""), file, "embeddings." + it.key() + ".png");
    e.integer("samples", 0, kCount);
    e.real("perplexity", 0, kNonNegative);
    e.real_or_null("trustworthiness", kUnit);
  }
  return j;
}

std::optional<calibration::Calibration> read_model_calibration(const io::Metadata& metadata, const std::string& source) {
  auto it = metadata.find(kCalibrationKey);
  if (it == metadata.end()) return std::nullopt;
  const auto where = source + ": metadata " + kCalibrationKey;
  return calibration::Calibration::from_json(settings::parse_json(it->second, where), where);
}

}  // namespace drifa::runs::files
