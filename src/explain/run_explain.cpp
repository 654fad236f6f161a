#include "drifa/explain/run_explain.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "drifa/data/csv.h"
#include "drifa/data/image.h"
#include "drifa/data/loader.h"
#include "drifa/data/synth.h"
#include "drifa/error.h"
#include "drifa/inference/inferer.h"
#include "drifa/io/atomic_file.h"
#include "drifa/io/folder_lock.h"
#include "drifa/io/settings.h"
#include "drifa/visual/plots.h"
#include "drifa/runs/files.h"

namespace fs = std::filesystem;

namespace drifa::explain {

namespace {

std::string safe(const std::string& s) {
  std::string o;
  for (char c : s) o += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '_';
  return o;
}

// Rows (sample, task) ranked for the gallery.
std::vector<std::pair<size_t, int64_t>> gallery_rows(const std::vector<data::Example>& ex, const ModelConfig& cfg,
                                                     const GalleryOptions& opt) {
  std::vector<std::pair<size_t, int64_t>> rows;
  for (size_t i = 0; i < ex.size(); ++i)
    for (int64_t t = 0; t < cfg.tasks(); ++t)
      if (ex[i].labels[static_cast<size_t>(t)] >= 0) rows.push_back({i, t});
  const bool by_uq = opt.select == "uncertain" || (opt.select == "auto" && !opt.uq_samples_csv.empty() &&
                                                   fs::exists(opt.uq_samples_csv));
  if (opt.select != "auto" && opt.select != "first" && opt.select != "uncertain")
    throw Error("--select must be auto, first or uncertain, got '" + opt.select + "'");
  if (by_uq) {
    if (opt.uq_samples_csv.empty() || !fs::exists(opt.uq_samples_csv))
      throw Error("--select uncertain needs the uncertainty study's samples.csv (run `drifa uq` first)");
    std::map<std::pair<size_t, std::string>, double> ent;
    for (const auto& r : runs::files::read_uq_samples(opt.uq_samples_csv))
      ent[{static_cast<size_t>(r.sample), r.task}] = r.predictive_entropy;
    std::stable_sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) {
      auto ea = ent.find({a.first, cfg.task_name(a.second)}), eb = ent.find({b.first, cfg.task_name(b.second)});
      const double va = ea == ent.end() ? -1 : ea->second, vb = eb == ent.end() ? -1 : eb->second;
      return va > vb;
    });
  }
  return rows;
}

torch::Tensor load_mask(const std::string& path, int64_t h, int64_t w) {
  cv::Mat m = data::decode_image(path);
  if (m.channels() != 1) m = data::to_channels(m, 1);
  cv::Mat r;
  cv::resize(m, r, cv::Size(static_cast<int>(w), static_cast<int>(h)), 0, 0, cv::INTER_NEAREST);
  return torch::from_blob(r.data, {h, w}, torch::kFloat32).gt(0.5).clone();
}

}  // namespace

nlohmann::json gradcam_run(DRIFANet& net, const runs::RunFolder& run, data::ImageCache& cache,
                           const GalleryOptions& opt, const std::string& out_dir) {
  const io::FolderLock lock(out_dir);  // before the work: a second writer is refused at once
  const auto& cfg = net->config();
  // -1 selects the default (the last stage, each task's own modality, the predicted class).
  const std::string src = "Grad-CAM options";
  settings::check_integer(src, "stage", opt.stage, {-1, cfg.stages() - 1});
  settings::check_integer(src, "modality", opt.modality, {-1, cfg.modalities - 1});
  const int64_t fewest_classes = *std::min_element(cfg.classes.begin(), cfg.classes.end());
  settings::check_integer(src, "class", opt.target_class, {-1, fewest_classes - 1});
  settings::check_integer(src, "count", opt.count, settings::limits::kCount);
  const auto examples = run.examples(opt.part);
  const auto rows = gallery_rows(examples, cfg, opt);
  std::map<std::pair<size_t, int64_t>, int> chosen;  // row -> gallery position
  for (size_t k = 0; k < rows.size() && static_cast<int>(k) < opt.count; ++k) chosen[rows[k]] = static_cast<int>(k);
  data::LoaderOptions lo;
  lo.batch_size = opt.batch_size;
  lo.workers = run.cfg.data.workers;
  data::BatchLoader loader(examples, cache, lo);
  nlohmann::json images = nlohmann::json::array();
  double energy = 0, uniform = 0, hits = 0;
  int64_t scored = 0;
  std::vector<nlohmann::json> gallery(chosen.size());
  data::Batch b;
  while (loader.next(b)) {
    for (auto& x : b.inputs) x = x.to(opt.device);
    for (int64_t t = 0; t < cfg.tasks(); ++t) {
      if (!b.labels[static_cast<size_t>(t)].ge(0).any().item<bool>()) continue;
      GradCAMOptions go;
      go.task = t;
      go.modality = opt.modality >= 0 ? opt.modality : (run.data.paired ? 0 : t);
      go.stage = opt.stage;
      go.target_class = opt.target_class;
      const auto g = grad_cam(net, b.inputs, go);
      auto y = b.labels[static_cast<size_t>(t)];
      for (int64_t r = 0; r < y.size(0); ++r) {
        if (y[r].item<int64_t>() < 0) continue;
        const size_t idx = b.indices[static_cast<size_t>(r)];
        const std::string& img_path = examples[idx].paths[static_cast<size_t>(go.modality)];
        const std::string mask_path = data::synthetic_mask_path(img_path);
        std::optional<LesionScore> ls;
        if (!mask_path.empty() && fs::exists(mask_path)) {
          ls = lesion_score(g.map[r], load_mask(mask_path, g.map.size(1), g.map.size(2)));
          energy += ls->energy_inside;
          uniform += ls->uniform;
          hits += ls->pointing_hit ? 1 : 0;
          ++scored;
        }
        auto it = chosen.find({idx, t});
        if (it == chosen.end()) continue;
        const std::string stem = std::to_string(it->second) + "_" + safe(cfg.task_name(t)) + "_" +
                                 safe(cfg.modality_name(go.modality));
        const cv::Mat original = data::decode_for_display(img_path, run.cfg.data.image_options());  // an image or a volume slice
        data::write_image((fs::path(out_dir) / (stem + ".png")).string(), overlay(original, g.map[r]));
        auto raw = g.raw[r].contiguous();
        cv::Mat rawm(static_cast<int>(raw.size(0)), static_cast<int>(raw.size(1)), CV_32F, raw.data_ptr<float>());
        data::write_image((fs::path(out_dir) / (stem + "_cam.tiff")).string(), rawm.clone());
        const int64_t pred = g.probs[r].argmax().item<int64_t>();
        nlohmann::json e = {{"image", stem + ".png"},
                            {"raw_map", stem + "_cam.tiff"},
                            {"sample", idx},
                            {"task", cfg.task_name(t)},
                            {"modality", cfg.modality_name(go.modality)},
                            {"path", img_path},
                            {"true_label", cfg.class_name(t, y[r].item<int64_t>())},
                            {"predicted_label", cfg.class_name(t, pred)},
                            {"explained_class", cfg.class_name(t, g.target_class[r].item<int64_t>())},
                            {"probability", g.probs[r][pred].item<double>()}};
        if (ls) e["lesion"] = {{"energy_inside", ls->energy_inside}, {"uniform", ls->uniform}, {"pointing_hit", ls->pointing_hit}};
        gallery[static_cast<size_t>(it->second)] = e;
      }
    }
  }
  for (auto& e : gallery)
    if (!e.is_null()) images.push_back(e);
  nlohmann::json j = {{"part", opt.part}, {"stage", opt.stage < 0 ? cfg.stages() - 1 : opt.stage}, {"images", images},
                      {"selection", rows.empty() ? "none" : opt.select}};
  if (scored > 0)
    j["lesion"] = {{"maps", scored},
                   {"energy_inside_mean", energy / double(scored)},
                   {"uniform_mean", uniform / double(scored)},
                   {"pointing_hit_rate", hits / double(scored)},
                   {"pointing_uniform_expectation", uniform / double(scored)}};
  io::atomic_write_text(runs::files::path(out_dir, runs::files::kGradcam), j.dump(2));
  return j;
}

nlohmann::json tsne_run(DRIFANet& net, const runs::RunFolder& run, data::ImageCache& cache, const EmbedOptions& opt,
                        const std::string& out_dir) {
  const io::FolderLock lock(out_dir);
  const auto& cfg = net->config();
  const auto examples = run.examples(opt.part);
  data::LoaderOptions lo;
  lo.batch_size = opt.batch_size;
  lo.workers = run.cfg.data.workers;
  data::BatchLoader loader(examples, cache, lo);
  std::vector<torch::Tensor> feats, labels_all(static_cast<size_t>(cfg.tasks()));
  std::vector<std::vector<torch::Tensor>> labels(static_cast<size_t>(cfg.tasks()));
  inference::InferOptions io;
  io.device = opt.device;
  io.features = true;
  inference::Inferer inferer(net, io);
  data::Batch b;
  while (loader.next(b)) {
    feats.push_back(inferer.batch(b).features);
    for (size_t t = 0; t < labels.size(); ++t) labels[t].push_back(b.labels[t]);
  }
  const auto F = torch::cat(feats);
  nlohmann::json out = {{"part", opt.part}, {"embeddings", nlohmann::json::object()}};
  const int64_t w = F.size(1) / cfg.modalities;
  for (int64_t t = 0; t < cfg.tasks(); ++t) {
    auto y = torch::cat(labels[static_cast<size_t>(t)]);
    auto keep = y.ge(0).nonzero().squeeze(1);
    if (keep.numel() == 0) continue;
    std::vector<std::pair<std::string, torch::Tensor>> views = {{safe(cfg.task_name(t)), F.index_select(0, keep)}};
    if (opt.per_modality)
      for (int64_t m = 0; m < cfg.modalities; ++m)
        views.push_back({safe(cfg.task_name(t)) + "_" + safe(cfg.modality_name(m)), F.index_select(0, keep).narrow(1, m * w, w)});
    auto yk = y.index_select(0, keep);
    for (const auto& [name, X] : views) {
      TSNEOptions to = opt.tsne;
      const int64_t n = X.size(0);
      if (double(n - 1) <= to.perplexity) to.perplexity = std::max(1.0, double(n - 1) / 3.0);
      if (n < 4) throw Error("t-SNE of " + name + ": only " + std::to_string(n) + " samples");
      const auto res = tsne(X, to);
      const int64_t kn = std::min<int64_t>(opt.neighbours, std::max<int64_t>(1, (n - 1) / 2));
      const double trust = trustworthiness(X, res.embedding, kn);
      std::ostringstream csv;
      csv.precision(8);
      csv << "sample,x,y,label,path\n";
      std::map<int64_t, visual::Series> by_class;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t idx = keep[i].item<int64_t>(), lab = yk[i].item<int64_t>();
        const double x = res.embedding[i][0].item<double>(), yv = res.embedding[i][1].item<double>();
        const auto& paths = examples[static_cast<size_t>(idx)].paths;
        csv << idx << "," << x << "," << yv << "," << data::csv_escape(cfg.class_name(t, lab)) << ","
            << data::csv_escape(paths[static_cast<size_t>(run.data.paired ? 0 : t)]) << "\n";
        auto& s = by_class[lab];
        s.title = cfg.class_name(t, lab);
        s.style = "points pt 7 ps 0.7";
        s.x.push_back(x);
        s.y.push_back(yv);
      }
      io::atomic_write_text((fs::path(out_dir) / (name + ".csv")).string(), csv.str());
      visual::Plot p;
      p.title = "t-SNE of the fused features: " + name + " (" + opt.part + ", trustworthiness " +
                std::to_string(trust).substr(0, 5) + ")";
      p.xlabel = "t-SNE 1";
      p.ylabel = "t-SNE 2";
      for (auto& [k, s] : by_class) p.series.push_back(s);
      visual::plot_png(p, (fs::path(out_dir) / (name + ".png")).string());
      out["embeddings"][name] = {{"task", cfg.task_name(t)}, {"samples", n}, {"perplexity", to.perplexity},
                                 {"kl_divergence", res.kl_divergence}, {"iterations", res.iterations},
                                 {"trustworthiness", trust}, {"neighbours", kn},
                                 {"csv", name + ".csv"}, {"png", name + ".png"}};
    }
  }
  io::atomic_write_text(runs::files::path(out_dir, runs::files::kTsne), out.dump(2));
  return out;
}

}  // namespace drifa::explain
