#include "drifa/report/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "drifa/data/csv.h"
#include "drifa/data/volume_slices.h"
#include "drifa/error.h"
#include "drifa/inference/method.h"
#include "drifa/io/atomic_file.h"
#include "drifa/io/folder_lock.h"
#include "drifa/io/config_file.h"
#include "drifa/io/base64.h"
#include "drifa/visual/plots.h"
#include "drifa/runs/ensemble.h"
#include "drifa/runs/files.h"
#include "drifa/runs/run_folder.h"

namespace fs = std::filesystem;

namespace drifa::report {

namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

std::string fmt(const nlohmann::json& v, int precision = 3) {
  if (v.is_null()) return "n/a";
  if (!v.is_number()) return esc(v.dump());
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(precision);
  o << v.get<double>();
  return o.str();
}

std::string img(const std::string& png, const std::string& alt, int width = 0) {
  const std::string mime = png.size() > 5 && png.substr(png.size() - 4) == ".png" ? "image/png" : "image/jpeg";
  return "<img alt=\"" + esc(alt) + "\"" + (width ? " width=\"" + std::to_string(width) + "\"" : "") + " src=\"data:" +
         mime + ";base64," + io::base64(io::read_file(png, "image")) + "\">";
}

std::string table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows) {
  std::ostringstream o;
  o << "<table><tr>";
  for (const auto& h : head) o << "<th>" << esc(h) << "</th>";
  o << "</tr>";
  for (const auto& r : rows) {
    o << "<tr>";
    for (const auto& c : r) o << "<td>" << c << "</td>";
    o << "</tr>";
  }
  o << "</table>";
  return o.str();
}

// "0.850 [0.800, 0.900]" when the metric has a bootstrap interval.
std::string with_interval(const nlohmann::json& t, const char* key) {
  if (!t.contains(key)) return "n/a";
  std::string out = fmt(t[key]);
  if (t.contains("intervals") && t["intervals"].is_object() && t["intervals"].contains(key))
    out += " <small>[" + fmt(t["intervals"][key][0]) + ", " + fmt(t["intervals"][key][1]) + "]</small>";
  return out;
}

struct Builder {
  std::string dir, plots;
  std::ostringstream html;
  std::vector<std::string> missing;
  int figures = 0;

  // A section whose input is not there yet: say which command makes it.
  void not_run(const std::string& what, const std::string& command) {
    missing.push_back(what + ": run `" + command + "`");
    html << "<p class=missing>Not run yet: <code>" << esc(command) << "</code></p>";
  }

  std::string plot(const visual::Plot& p, const std::string& name) {
    const auto path = (fs::path(plots) / (name + ".png")).string();
    visual::plot_png(p, path);
    ++figures;
    return img(path, p.title);
  }
};

void section_curves(Builder& b, const std::vector<std::string>& runs) {
  b.html << "<h2>Training</h2>";
  visual::Plot loss;
  loss.title = "Loss per epoch";
  loss.xlabel = "epoch";
  loss.ylabel = "loss";
  visual::Plot acc;
  acc.title = "Validation accuracy per epoch (member 0)";
  acc.xlabel = "epoch";
  acc.ylabel = "accuracy";
  acc.yrange = std::make_pair(0.0, 1.0);
  for (size_t k = 0; k < runs.size(); ++k) {
    if (!fs::exists(runs::files::path(runs[k], runs::files::kLogCsv))) continue;
    const auto log = runs::files::read_log_csv(runs[k]);
    visual::Series tr, va;
    const std::string who = runs.size() > 1 ? " (member " + std::to_string(k) + ")" : "";
    tr.title = "train" + who;
    va.title = "validation" + who;
    tr.style = va.style = "linespoints pt 7 ps 0.5";
    // A value that was not a number when it was logged (NaN) is left out of its curve.
    auto add = [](visual::Series& s, double x, double y) {
      if (std::isfinite(y)) {
        s.x.push_back(x);
        s.y.push_back(y);
      }
    };
    for (size_t r = 0; r < log.epoch.size(); ++r) {
      add(tr, log.epoch[r], log.train_loss[r]);
      add(va, log.epoch[r], log.val_loss[r]);
    }
    if (runs.size() == 1 || k < 5) {
      loss.series.push_back(tr);
      loss.series.push_back(va);
    }
    if (k == 0)
      for (size_t c = 0; c < log.acc_tasks.size(); ++c) {
        visual::Series s;
        s.title = log.acc_tasks[c];
        s.style = "linespoints pt 7 ps 0.5";
        for (size_t r = 0; r < log.epoch.size(); ++r) add(s, log.epoch[r], log.val_acc[c][r]);
        acc.series.push_back(s);
      }
  }
  if (loss.series.empty()) {
    b.missing.push_back("training curves: no log.csv");
    b.html << "<p class=missing>No training log found.</p>";
    return;
  }
  b.html << "<div class=row>" << b.plot(loss, "loss") << b.plot(acc, "val_accuracy") << "</div>";
}

void section_metrics(Builder& b, const std::string& run) {
  b.html << "<h2>Test metrics</h2>";
  if (!fs::exists(runs::files::path(run, runs::files::kMetrics))) {
    b.not_run("test metrics", "drifa evaluate " + run);
    return;
  }
  const auto m = runs::files::read_metrics(run);
  b.html << "<p>Model " << esc(m.value("model", "")) << ", deterministic evaluation on the " << esc(m.value("part", "test"))
         << " split" << (m.value("calibrated", false) ? ", calibrated (temperature per task)" : "")
         << ". In brackets: 95% intervals, "
         << (!m["tasks"].empty() && m["tasks"].begin().value().contains("intervals") &&
                     m["tasks"].begin().value()["intervals"].contains("groups")
                 ? "cluster bootstrap over groups (patients, lesions or volumes), stratified by the group's label"
                 : "stratified bootstrap")
         << " (percentile).</p>";
  std::vector<std::vector<std::string>> rows;
  bool grouped = false;
  for (auto it = m["tasks"].begin(); it != m["tasks"].end(); ++it) {
    const auto& t = it.value();
    auto row = [&](const std::string& unit, const nlohmann::json& m, const nlohmann::json& count) {
      rows.push_back({esc(it.key()), unit, fmt(count, 0), with_interval(m, "accuracy"), with_interval(m, "balanced_accuracy"),
                      fmt(m.value("macro_precision", nlohmann::json(nullptr))), fmt(m.value("macro_recall", nlohmann::json(nullptr))),
                      with_interval(m, "macro_f1"), with_interval(m, "roc_auc_macro"), with_interval(m, "ece")});
    };
    row("images", t, t["samples"]);
    if (t.contains("group_level")) {
      const auto& g = t["group_level"];
      grouped = true;
      row("groups (" + esc(g["aggregate"].get<std::string>()) + ")", g, g["groups"]);
    }
  }
  b.html << table({"task", "unit", "count", "accuracy", "balanced accuracy", "macro precision", "macro recall", "macro F1", "ROC-AUC",
                   "ECE"},
                  rows);
  if (grouped)
    b.html << "<p>Group rows: one prediction per patient, lesion or volume from its images' probabilities; the test "
              "images of one group are not independent, so the group rows are the ones to compare with other studies.</p>";
  b.html << "<div class=row>";
  for (auto it = m["tasks"].begin(); it != m["tasks"].end(); ++it) {
    const auto& t = it.value();
    std::vector<std::string> names;
    for (const auto& c : t["classes"]) names.push_back(c.get<std::string>());
    std::vector<std::string> head = {"true \\ predicted"};
    for (const auto& n : names) head.push_back(n);
    std::vector<std::vector<std::string>> cm;
    for (size_t i = 0; i < t["confusion_matrix"].size(); ++i) {
      std::vector<std::string> r = {"<b>" + esc(names[i]) + "</b>"};
      for (const auto& v : t["confusion_matrix"][i]) r.push_back(std::to_string(v.get<int64_t>()));
      cm.push_back(r);
    }
    b.html << "<div><h3>Confusion matrix: " << esc(it.key()) << "</h3>" << table(head, cm) << "</div>";
  }
  b.html << "</div>";
}

// Predictions from the modalities a case has: the partner runs of metrics.json and missing.json.
void section_inputs(Builder& b, const std::string& run) {
  namespace rf = runs::files;
  const auto missing = rf::read_missing(run);
  nlohmann::json partners;
  if (fs::exists(rf::path(run, rf::kMetrics))) partners = rf::read_metrics(run).value("partners", nlohmann::json());
  if (!missing && partners.is_null()) return;
  b.html << "<h2>Missing modalities</h2>";
  auto cells = [](const nlohmann::json& t) -> std::vector<std::string> {
    if (t.contains("scored") && !t["scored"].get<bool>()) return {"not scored: " + esc(t.value("reason", "")), "", ""};
    return {with_interval(t, "accuracy"), with_interval(t, "balanced_accuracy"), with_interval(t, "roc_auc_macro")};
  };
  if (!partners.is_null()) {
    b.html << "<p>Unpaired model: each task's own image with its other modalities replaced by K partners from the run's bank "
              "(training images), probabilities averaged over the partners. Partner information: the entropy due to the "
              "partner drawn (nats); partner sd: the spread of the predicted class's probability over partners.</p>";
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : partners["runs"])
      for (auto it = r["tasks"].begin(); it != r["tasks"].end(); ++it) {
        std::vector<std::string> row = {esc(it.key()), std::to_string(r["partners"].get<int64_t>())};
        for (auto& c : cells(it.value())) row.push_back(c);
        row.push_back(fmt(it.value().value("partner_information", nlohmann::json())));
        row.push_back(fmt(it.value().value("partner_sd", nlohmann::json())));
        rows.push_back(row);
      }
    b.html << table({"task", "partners", "accuracy", "balanced accuracy", "ROC-AUC", "partner information", "partner sd"}, rows);
  }
  if (missing) {
    b.html << "<p>Every pattern of absent modalities (" << ((*missing).value("paired", false) ? "paired" : "unpaired")
           << " data): an absent modality's branch is skipped, MIFA fuses the present ones, the head sees zeros in its place.</p>";
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : (*missing)["patterns"])
      for (auto it = p["tasks"].begin(); it != p["tasks"].end(); ++it) {
        std::vector<std::string> row = {esc(p["pattern"].get<std::string>()), esc(it.key())};
        for (auto& c : cells(it.value())) row.push_back(c);
        rows.push_back(row);
      }
    b.html << table({"absent", "task", "accuracy", "balanced accuracy", "ROC-AUC"}, rows);
  }
}

// Conformal prediction sets of one task: coverage and mean set size per method, alpha and score,
// and the worst class's coverage (class-conditional coverage is not guaranteed).
void section_conformal(Builder& b, const nlohmann::json& task) {
  std::vector<std::vector<std::string>> rows;
  for (const auto* method : inference::methods()) {
    const auto m = method->name();
    if (!task.contains(m) || !task[m].contains("conformal")) continue;
    for (auto a = task[m]["conformal"].begin(); a != task[m]["conformal"].end(); ++a)
      for (auto sc = a.value().begin(); sc != a.value().end(); ++sc) {
        std::string worst = "n/a", per;
        double w = 2;
        for (auto c = sc.value()["per_class"].begin(); c != sc.value()["per_class"].end(); ++c) {
          if (!c.value()["coverage"].is_null()) w = std::min(w, c.value()["coverage"].get<double>());
          per += esc(c.key()) + ": " + fmt(c.value()["coverage"]) + " / " + fmt(c.value()["mean_size"], 2) + "<br>";
        }
        if (w <= 1) worst = fmt(nlohmann::json(w));
        rows.push_back({m, esc(a.key()), esc(sc.key()), fmt(nlohmann::json(1 - std::stod(a.key()))), fmt(sc.value()["coverage"]),
                        fmt(sc.value()["mean_size"], 2), worst, "<small>" + per + "</small>"});
      }
  }
  if (rows.empty()) return;
  b.html << "<p>Conformal prediction sets (split conformal, thresholds from the calibration part): the guarantee is coverage "
            "&ge; 1 &minus; &alpha; on average over exchangeable cases.</p>"
         << table({"method", "α", "score", "guaranteed", "coverage", "mean set size", "worst class",
                   "per class: coverage / mean size"},
                  rows);
}

// "6 groups (mean)": a group-level block's row label.
std::string groups_label(const nlohmann::json& g) {
  return fmt(g["groups"], 0) + " groups (" + esc(g["aggregate"].get<std::string>()) + ")";
}

void section_cv(Builder& b) {
  namespace rf = runs::files;
  b.html << "<h2>Cross-validation</h2>";
  if (!fs::exists(rf::path(b.dir, rf::kCvMetrics))) {
    b.not_run("cross-validation", "drifa cv -c CONFIG -o " + b.dir);
    return;
  }
  const auto j = rf::read_cv_metrics(b.dir);
  bool grouped = false;
  for (const auto& t : j["tasks"]) grouped = grouped || t["pooled"].contains("group_level");
  b.html << "<p>" << j["folds"] << (grouped ? " stratified group folds (no group in two folds)" : " stratified folds")
         << "; out-of-fold predictions pooled (95% intervals: "
         << (grouped ? "cluster bootstrap over groups" : "stratified bootstrap")
         << "); the held-out test part scored by the average of the fold models.</p>";
  const char* keys[] = {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc_macro", "ece"};
  for (auto it = j["tasks"].begin(); it != j["tasks"].end(); ++it) {
    const auto& t = it.value();
    std::vector<std::vector<std::string>> rows;
    for (const auto& f : t["folds"]) {
      std::vector<std::string> r = {"fold " + fmt(f["fold"], 0)};
      for (const char* k : keys) r.push_back(fmt(f[k]));
      rows.push_back(r);
    }
    std::vector<std::string> ms = {"mean &plusmn; sd"}, pooled = {"pooled out-of-fold"}, hold = {"test, fold average"};
    for (const char* k : keys) {
      ms.push_back(t["mean_sd"].contains(k) ? fmt(t["mean_sd"][k]["mean"]) + " &plusmn; " + fmt(t["mean_sd"][k]["sd"]) : "n/a");
      pooled.push_back(with_interval(t["pooled"], k));
      if (t.contains("holdout")) hold.push_back(with_interval(t["holdout"]["average"], k));
    }
    rows.push_back(ms);
    rows.push_back(pooled);
    auto group_row = [&](const std::string& name, const nlohmann::json& m) {  // one prediction per group
      if (!m.contains("group_level")) return;
      const auto& g = m["group_level"];
      std::vector<std::string> r = {name + ", " + groups_label(g)};
      for (const char* k : keys) r.push_back(with_interval(g, k));
      rows.push_back(r);
    };
    group_row("pooled out-of-fold", t["pooled"]);
    if (t.contains("holdout")) rows.push_back(hold);
    if (t.contains("holdout")) group_row("test, fold average", t["holdout"]["average"]);
    b.html << "<h3>Task " << esc(it.key()) << "</h3>"
           << table({"", "accuracy", "balanced accuracy", "macro F1", "ROC-AUC", "ECE"}, rows);
  }
}

void section_uq(Builder& b) {
  namespace rf = runs::files;
  b.html << "<h2>Uncertainty</h2>";
  if (!fs::exists(rf::path(b.dir, rf::kUqDir, rf::kUq))) {
    b.not_run("uncertainty", "drifa uq " + b.dir);
    return;
  }
  const auto j = rf::read_uq(b.dir);
  const auto samples_csv = rf::path(b.dir, rf::kUqDir, rf::kUqSamples);
  const auto samples = fs::exists(samples_csv) ? rf::read_uq_samples(samples_csv) : std::vector<rf::UqSample>{};
  b.html << "<p>" << j["models"] << " model(s) &times; " << j["passes"]
         << " Monte Carlo dropout passes. deterministic = model 0 without dropout; mc = model 0 with MC dropout; "
            "ensemble_deterministic = the models without dropout; ensemble = all models &times; all passes. "
            "Entropies in nats; ECE over 15 bins; AURC ranks by predictive entropy; errAUROC = how well a measure flags "
            "the model's own errors.</p>";
  for (auto it = j["tasks"].begin(); it != j["tasks"].end(); ++it) {
    std::vector<std::vector<std::string>> rows;
    std::string final_method;
    for (const auto* method : inference::methods()) {
    const auto m = method->name();
      if (!it.value().contains(m) || !it.value()[m].contains("metrics")) continue;
      final_method = m;
      const auto& s = it.value()[m];
      std::string sel;
      for (const auto& c : s["selective"]) sel += fmt(c["coverage"], 1) + ": " + fmt(c["accuracy"]) + "<br>";
      const bool cal = s.contains("before_calibration");
      auto before_after = [&](const char* k) {
        return cal ? fmt(s["before_calibration"][k]) + " &rarr; " + fmt(s[k]) : fmt(s[k]);
      };
      std::string acc = fmt(s["metrics"]["accuracy"]);
      if (s.contains("intervals") && s["intervals"].contains("accuracy"))
        acc += " <small>[" + fmt(s["intervals"]["accuracy"][0]) + ", " + fmt(s["intervals"]["accuracy"][1]) + "]</small>";
      rows.push_back({m, acc,
                      fmt(s["metrics"].value("balanced_accuracy", nlohmann::json(nullptr))), fmt(s["metrics"]["macro_f1"]),
                      fmt(s.value("temperature", nlohmann::json(nullptr)), 2), before_after("nll"), before_after("brier"),
                      before_after("ece"), fmt(s["aurc"]), sel, fmt(s["error_auroc"]["predictive_entropy"]),
                      fmt(s["error_auroc"]["mutual_information"])});
      if (s.contains("group_level")) {  // the same method, one prediction per group
        const auto& g = s["group_level"];
        rows.push_back({std::string(m) + ", " + groups_label(g),
                        with_interval(g, "accuracy"), with_interval(g, "balanced_accuracy"), with_interval(g, "macro_f1"), "",
                        fmt(g.value("nll", nlohmann::json(nullptr))), "", fmt(g.value("ece", nlohmann::json(nullptr))), "", "", "",
                        ""});
      }
    }
    b.html << "<h3>Task " << esc(it.key()) << "</h3>"
           << table({"method", "accuracy [95% CI]", "balanced accuracy", "macro F1", "temperature", "NLL (raw → calibrated)",
                     "Brier", "ECE", "AURC", "selective accuracy (coverage: acc)", "errAUROC (entropy)", "errAUROC (MI)"},
                    rows);
    section_conformal(b, it.value());
    if (final_method.empty()) continue;
    const auto& rel = it.value()[final_method]["reliability"];
    visual::Plot p;
    p.title = "Reliability: " + it.key() + " (" + final_method + ")";
    p.xlabel = "confidence";
    p.ylabel = "accuracy";
    p.xrange = p.yrange = std::make_pair(0.0, 1.0);
    p.diagonal = true;
    visual::Series s;
    s.title = "accuracy per bin";
    s.style = "boxes";
    const int bins = rel["bins"].get<int>();
    for (int k = 0; k < bins; ++k)
      if (rel["count"][k].get<int64_t>() > 0) {
        s.x.push_back((k + 0.5) / bins);
        s.y.push_back(rel["accuracy"][k].get<double>());
      }
    p.series.push_back(s);
    if (it.value()[final_method].contains("before_calibration")) {
      // The raw probabilities' reliability beside the calibrated one.
      const auto& raw = it.value()[final_method]["before_calibration"]["reliability"];
      visual::Series r;
      r.title = "before calibration";
      r.style = "linespoints pt 7";
      for (int k = 0; k < raw["bins"].get<int>(); ++k)
        if (raw["count"][k].get<int64_t>() > 0) {
          r.x.push_back(raw["confidence"][k].get<double>());
          r.y.push_back(raw["accuracy"][k].get<double>());
        }
      p.series.back().title = "calibrated: accuracy per bin";
      p.series.push_back(r);
    }
    std::string hist;
    if (!samples.empty()) {
      for (const bool mutual : {false, true}) {
        const std::string label = mutual ? "mutual information" : "predictive entropy";
        std::vector<double> right, wrong;
        double hi = 1e-9;
        for (const auto& r : samples)
          if (r.task == it.key()) {
            const double v = mutual ? r.mutual_information : r.predictive_entropy;
            (r.correct ? right : wrong).push_back(v);
            hi = std::max(hi, v);
          }
        visual::Plot h;
        h.title = "Distribution of the " + label + ": " + it.key();
        h.xlabel = label + " (nats)";
        h.ylabel = "samples";
        const int nb = 15;
        for (const auto& [vals, name] : std::vector<std::pair<std::vector<double>*, std::string>>{{&right, "correct"}, {&wrong, "wrong"}}) {
          visual::Series hs;
          hs.title = name + " (" + std::to_string(vals->size()) + ")";
          hs.style = "steps lw 2";
          std::vector<double> count(nb, 0);
          for (double v : *vals) count[std::clamp(static_cast<int>(v / hi * nb), 0, nb - 1)] += 1;
          for (int k = 0; k <= nb; ++k) {
            hs.x.push_back(hi * k / nb);
            hs.y.push_back(count[std::min(k, nb - 1)]);
          }
          h.series.push_back(hs);
        }
        hist += b.plot(h, "hist_" + std::to_string(b.figures));
      }
    }
    b.html << "<div class=row>" << b.plot(p, "reliability_" + std::to_string(b.figures)) << hist << "</div>";
  }
}

// Volume modalities: the true class's probability along the slice axis for a few test volumes
// (predictions.csv, whose paths are slice references).
void section_volumes(Builder& b, const std::string& run) {
  namespace rf = runs::files;
  const auto csv_path = rf::path(run, rf::kPredictions);
  if (!fs::exists(csv_path)) return;
  const auto folder = runs::RunFolder::open(run);
  bool any = false;
  for (const auto& m : folder.cfg.data.modalities) any = any || m.is_volume();
  if (!any) return;
  const auto csv = data::read_csv(csv_path);
  const int task_col = csv.column(runs::files::kColTask, csv_path), true_col = csv.column(runs::files::kColTrueLabel, csv_path);
  b.html << "<h2>Volumes: probability along the slice axis</h2><p>The true class's probability for each slice of up to four "
            "test volumes per task (<code>predictions.csv</code>; slice index in the recipe's axis, LPS+ order).</p><div class=row>";
  for (size_t t = 0; t < folder.data.tasks.size(); ++t) {
    const auto& task = folder.data.tasks[t];
    const bool volume_task = std::any_of(folder.cfg.data.modalities.begin(), folder.cfg.data.modalities.end(),
                                         [&](const data::ModalitySource& m) { return m.name == task && m.is_volume(); });
    if (!volume_task) continue;
    const int path_col = csv.column(runs::files::kColPathPrefix + task, csv_path);
    std::map<std::string, visual::Series> curves;  // per volume
    std::vector<std::string> order;
    for (const auto& row : csv.rows) {
      if (row[size_t(task_col)] != task) continue;
      const auto ref = data::parse_slice_ref(row[size_t(path_col)]);
      if (!ref) continue;
      const auto& classes = folder.data.classes[t];
      const auto k = std::find(classes.begin(), classes.end(), row[size_t(true_col)]) - classes.begin();
      const int prob_col = csv.column(runs::files::kColProbPrefix + std::to_string(k), csv_path);
      if (!curves.count(ref->volume)) {
        if (order.size() == 4) continue;
        order.push_back(ref->volume);
        curves[ref->volume] = {fs::path(ref->volume).filename().string() + " (" + row[size_t(true_col)] + ")", {}, {}, "linespoints"};
      }
      curves[ref->volume].x.push_back(double(ref->index));
      curves[ref->volume].y.push_back(std::stod(row[size_t(prob_col)]));
    }
    if (order.empty()) continue;
    visual::Plot p;
    p.title = task + ": P(true class) per slice";
    p.xlabel = "slice";
    p.ylabel = "probability";
    p.yrange = std::make_pair(0.0, 1.0);
    for (const auto& v : order) {
      auto s = curves[v];
      std::vector<size_t> idx(s.x.size());
      for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
      std::sort(idx.begin(), idx.end(), [&](size_t a, size_t c) { return s.x[a] < s.x[c]; });
      visual::Series sorted{s.title, {}, {}, s.style};
      for (auto i : idx) {
        sorted.x.push_back(s.x[i]);
        sorted.y.push_back(s.y[i]);
      }
      p.series.push_back(sorted);
    }
    b.html << b.plot(p, "volume_curve_" + std::to_string(t));
  }
  b.html << "</div>";
}

void section_gradcam(Builder& b) {
  namespace rf = runs::files;
  b.html << "<h2>Grad-CAM</h2>";
  if (!fs::exists(rf::path(b.dir, rf::kGradcamDir, rf::kGradcam))) {
    b.not_run("Grad-CAM", "drifa gradcam " + b.dir);
    return;
  }
  const auto j = rf::read_gradcam(b.dir);  // every image path resolved inside gradcam/
  b.html << "<p>Stage " << j["stage"] << ", cases ordered by " << (j["selection"] == "first" ? "position" : "uncertainty (most uncertain first, when the study was run)") << ".";
  if (j.contains("lesion"))
    b.html << " Against the known lesion masks (" << j["lesion"]["maps"] << " maps): <b>" << fmt(j["lesion"]["energy_inside_mean"])
           << "</b> of the heat-map energy falls inside the lesion, against " << fmt(j["lesion"]["uniform_mean"])
           << " for a uniform map; the pointing game hits " << fmt(j["lesion"]["pointing_hit_rate"]) << " (uniform "
           << fmt(j["lesion"]["pointing_uniform_expectation"]) << ").";
  b.html << "</p><div class=gallery>";
  for (const auto& e : j["images"]) {
    b.html << "<figure>" << img(e["image"].get<std::string>(), e["path"].get<std::string>(), 200)
           << "<figcaption>" << esc(e["task"].get<std::string>()) << " / " << esc(e["modality"].get<std::string>())
           << "<br>true <b>" << esc(e["true_label"].get<std::string>()) << "</b>, predicted <b>"
           << esc(e["predicted_label"].get<std::string>()) << "</b> (" << fmt(e["probability"], 2) << ")</figcaption></figure>";
  }
  b.html << "</div>";
}

void section_tsne(Builder& b) {
  namespace rf = runs::files;
  b.html << "<h2>t-SNE of the fused features</h2>";
  if (!fs::exists(rf::path(b.dir, rf::kTsneDir, rf::kTsne))) {
    b.not_run("t-SNE", "drifa tsne " + b.dir);
    return;
  }
  const auto j = rf::read_tsne(b.dir);  // every png path resolved inside tsne/
  b.html << "<div class=row>";
  for (auto it = j["embeddings"].begin(); it != j["embeddings"].end(); ++it)
    b.html << "<figure>" << img(it.value()["png"].get<std::string>(), "t-SNE " + it.key())
           << "<figcaption>" << esc(it.key()) << ": " << it.value()["samples"] << " samples, perplexity "
           << fmt(it.value()["perplexity"], 1) << ", trustworthiness " << fmt(it.value()["trustworthiness"]) << "</figcaption></figure>";
  b.html << "</div>";
}

}  // namespace

std::vector<std::string> write_report(const std::string& dir, const std::string& html_path) {
  namespace rf = runs::files;
  const bool cv = fs::is_directory(dir) && fs::exists(rf::path(dir, rf::kCv));
  std::vector<std::string> runs;
  if (cv) {
    for (const auto& n : rf::read_cv(dir).members)
      if (fs::exists(rf::path(rf::path(dir, n), rf::kConfig))) runs.push_back(rf::path(dir, n));
    if (runs.empty()) throw Error(dir + ": the cross-validation has no started fold yet");
  } else {
    runs = runs::member_runs(dir, /*finished_only=*/false);  // a report may show a run in progress
  }
  Builder b;
  b.dir = dir;
  b.plots = runs::files::path(dir, runs::files::kPlotsDir);
  const auto cfg = runs::RunFolder::open(runs[0]).cfg.to_json();
  // The report's own outputs (plots/, then report.html): one writer at a time. Not the run
  // folder: a report may be written while the run trains.
  const io::FolderLock lock(b.plots);
  // A killed report's report.html.tmp.PID, beside the report.
  const auto html_dir = fs::path(html_path).parent_path();
  io::remove_stale_temporaries(html_dir.empty() ? "." : html_dir.string());
  b.html << "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>DRIFA report: " << esc(dir) << "</title><style>"
         << "body{font-family:sans-serif;margin:2em;max-width:1400px;color:#222}"
         << "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
         << "th{background:#eee}.row{display:flex;flex-wrap:wrap;gap:1em}.gallery{display:flex;flex-wrap:wrap;gap:8px}"
         << "figure{margin:0}figcaption{font-size:12px;max-width:200px}.missing{color:#a00}pre{background:#f6f6f6;padding:8px}"
         << "</style></head><body>";
  b.html << "<h1>DRIFA-Net report</h1><p>Folder <code>" << esc(dir) << "</code>: " << runs.size()
         << (cv ? " cross-validation folds" : runs.size() > 1 ? " ensemble members" : " training run") << ".</p>";
  b.html << "<details><summary>Configuration</summary><pre>" << esc(cfg.dump(2)) << "</pre></details>";
  section_curves(b, runs);
  if (cv) {
    section_cv(b);
  } else {
    section_metrics(b, runs[0]);
    section_inputs(b, runs[0]);
    section_volumes(b, runs[0]);
    section_uq(b);
    section_gradcam(b);
    section_tsne(b);
  }
  // Lets a headless browser (and a reader) confirm that every embedded image decoded.
  b.html << "<p id=imgcheck></p><script>window.addEventListener('load',function(){var im=document.images,ok=0;"
            "for(var i=0;i<im.length;i++)if(im[i].complete&&im[i].naturalWidth>0)ok++;"
            "var p=document.getElementById('imgcheck');p.setAttribute('data-loaded',ok);p.setAttribute('data-total',im.length);"
            "p.textContent=ok+' of '+im.length+' images loaded';});</script></body></html>\n";
  io::atomic_write_text(html_path, b.html.str());
  return b.missing;
}

}  // namespace drifa::report
