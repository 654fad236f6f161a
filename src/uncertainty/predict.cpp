#include "drifa/uncertainty/predict.h"

#include <filesystem>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "drifa/data/csv.h"
#include "drifa/data/loader.h"
#include "drifa/data/split.h"
#include "drifa/data/transforms.h"
#include "drifa/error.h"
#include "drifa/explain/gradcam.h"
#include "drifa/uncertainty/measures.h"

namespace fs = std::filesystem;

namespace drifa::uncertainty {

std::vector<std::vector<std::string>> read_cases_csv(const std::string& path, const ModelConfig& cfg) {
  const auto t = data::read_csv(path);
  std::vector<int> cols;
  for (int64_t m = 0; m < cfg.modalities; ++m) cols.push_back(t.column(cfg.modality_name(m), path));
  const auto base = fs::absolute(path).parent_path();
  std::vector<std::vector<std::string>> cases;
  for (const auto& r : t.rows) {
    std::vector<std::string> c;
    for (int col : cols) {
      const auto& cell = r[static_cast<size_t>(col)];
      if (cell.empty() || cell.find('\0') != std::string::npos)
        throw Error(path + ": case " + std::to_string(cases.size() + 1) + ": an empty image path or one with a NUL byte");
      fs::path p(cell);
      c.push_back((p.is_absolute() ? p : base / p).string());
    }
    cases.push_back(c);
  }
  if (cases.empty()) throw Error(path + ": no cases");
  return cases;
}

nlohmann::json predict(std::vector<DRIFANet>& nets, const std::vector<std::vector<std::string>>& cases,
                       const PredictOptions& opt) {
  if (nets.empty()) throw Error("predict needs at least one model");
  const auto& cfg = nets[0]->config();
  std::string names;
  for (int64_t m = 0; m < cfg.modalities; ++m) names += (m ? ", " : "") + cfg.modality_name(m);
  data::ImageCache cache({static_cast<int>(cfg.image_size), static_cast<int>(cfg.in_channels), 8, opt.dicom});
  nlohmann::json out = nlohmann::json::array();
  for (size_t c = 0; c < cases.size(); ++c) {
    const auto& paths = cases[c];
    if (static_cast<int64_t>(paths.size()) != cfg.modalities)
      throw Error("case " + std::to_string(c + 1) + ": the model takes " + std::to_string(cfg.modalities) +
                  " images, one per modality (" + names + "); got " + std::to_string(paths.size()));
    std::vector<torch::Tensor> inputs;
    for (const auto& p : paths) {
      if (!fs::exists(p)) throw Error(p + ": no such image");
      inputs.push_back(data::to_tensor(cache.get(p)).unsqueeze(0).to(opt.device));
    }
    std::vector<std::vector<torch::Tensor>> samples(static_cast<size_t>(cfg.tasks()));
    for (size_t k = 0; k < nets.size(); ++k) {
      if (opt.mc.passes > 0) {
        MCOptions mo = opt.mc;
        mo.seed = data::mix_seed(opt.mc.seed, k);
        auto p = mc_sample(nets[k], inputs, {static_cast<int64_t>(c)}, mo);
        for (size_t t = 0; t < p.size(); ++t) samples[t].push_back(p[t]);
      } else {
        const Mode before = nets[k]->mode();
        nets[k]->set_mode(Mode::Eval);
        torch::NoGradGuard ng;
        auto r = nets[k]->forward(inputs);
        nets[k]->set_mode(before);
        for (size_t t = 0; t < r.logits.size(); ++t)
          samples[t].push_back(torch::softmax(r.logits[t].to(torch::kFloat32), 1).cpu().unsqueeze(0));
      }
    }
    nlohmann::json jc = {{"case", c + 1}, {"images", paths}, {"tasks", nlohmann::json::object()}};
    for (int64_t t = 0; t < cfg.tasks(); ++t) {
      const auto method = calibration::method_for(static_cast<int64_t>(nets.size()), opt.mc.passes);
      const auto* cal = opt.calibration ? opt.calibration->find(cfg.task_name(t), method) : nullptr;
      auto raw = torch::cat(samples[static_cast<size_t>(t)], 0);
      const auto m = sample_measures(cal ? calibration::calibrate(raw, cal) : raw);
      const int64_t pred = m.predicted[0].item<int64_t>();
      nlohmann::json probs = nlohmann::json::object();
      for (int64_t k = 0; k < cfg.classes[t]; ++k) probs[cfg.class_name(t, k)] = m.mean[0][k].item<double>();
      nlohmann::json jt = {{"class", cfg.class_name(t, pred)},
                           {"probability", m.mean[0][pred].item<double>()},
                           {"probabilities", probs},
                           {"predictive_entropy", m.predictive_entropy[0].item<double>()},
                           {"expected_entropy", m.expected_entropy[0].item<double>()},
                           {"mutual_information", m.mutual_information[0].item<double>()},
                           {"spread", m.spread[0].item<double>()},
                           {"method", method},
                           {"temperature", cal ? nlohmann::json(cal->temperature) : nlohmann::json(nullptr)}};
      if (cal) {
        const auto u = calibration::part_draws(opt.mc.seed, calibration::Part::Predict, {static_cast<int64_t>(c)});
        const double q = cal->threshold(opt.score, opt.alpha);
        const auto set = calibration::prediction_sets(m.mean, opt.score, q, u);
        nlohmann::json classes = nlohmann::json::array();
        for (int64_t k = 0; k < cfg.classes[t]; ++k)
          if (set[0][k].item<bool>()) classes.push_back(cfg.class_name(t, k));
        // The guarantee: over exchangeable cases, the set holds the true class with probability >= 1 - alpha.
        jt["prediction_set"] = {{"classes", classes}, {"alpha", opt.alpha}, {"coverage_guarantee", 1 - opt.alpha},
                                {"score", calibration::score_name(opt.score)}, {"calibration_samples", cal->samples}};
      } else {
        jt["prediction_set"] = nullptr;
      }
      if (!opt.gradcam_dir.empty()) {
        fs::create_directories(opt.gradcam_dir);
        nlohmann::json maps = nlohmann::json::object();
        for (int64_t mod = 0; mod < cfg.modalities; ++mod) {
          explain::GradCAMOptions go;
          go.task = t;
          go.modality = mod;
          go.target_class = pred;
          const auto g = explain::grad_cam(nets[0], inputs, go);
          const auto file = (fs::path(opt.gradcam_dir) / ("case" + std::to_string(c + 1) + "_" + cfg.task_name(t) + "_" +
                                                          cfg.modality_name(mod) + ".png")).string();
          data::write_image(file, explain::overlay(data::decode_image(paths[static_cast<size_t>(mod)], opt.dicom), g.map[0]));
          maps[cfg.modality_name(mod)] = file;
        }
        jt["gradcam"] = maps;
      }
      jc["tasks"][cfg.task_name(t)] = jt;
    }
    out.push_back(jc);
  }
  nlohmann::json j = {{"models", nets.size()},
                      {"passes", opt.mc.passes},
                      {"calibrated", opt.calibration != nullptr},
                      {"cases", out}};
  if (opt.calibration) {
    // MC and ensemble fits belong to the pass count they were made with; say both.
    j["calibration"] = {{"part", opt.calibration->part}, {"passes", opt.calibration->passes}, {"models", opt.calibration->models}};
    if (opt.mc.passes > 0 && opt.calibration->passes != opt.mc.passes)
      j["warning"] = "calibrated with " + std::to_string(opt.calibration->passes) + " Monte Carlo passes, predicted with " +
                     std::to_string(opt.mc.passes) + "; the temperature and the set are approximate";
  }
  return j;
}

}  // namespace drifa::uncertainty
