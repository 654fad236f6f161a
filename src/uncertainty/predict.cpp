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
#include "drifa/io/model_file.h"
#include "drifa/training/ensemble.h"
#include "drifa/training/run_files.h"
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
      if (cell.find('\0') != std::string::npos)
        throw Error(path + ": case " + std::to_string(cases.size() + 1) + ": an image path with a NUL byte");
      if (cell.empty()) {  // this modality was not given
        c.emplace_back();
        continue;
      }
      fs::path p(cell);
      c.push_back((p.is_absolute() ? p : base / p).string());
    }
    cases.push_back(c);
  }
  if (cases.empty()) throw Error(path + ": no cases");
  return cases;
}

namespace {

// Per task, [S, P, K_t]: every model's deterministic pass or MC passes (S) for each of the case's
// P rows (its partners; 1 without).
std::vector<torch::Tensor> case_samples(std::vector<DRIFANet>& nets, const inputs::Expanded& e, int64_t c,
                                        const PredictOptions& opt) {
  const auto& cfg = nets[0]->config();
  const int64_t P = e.per_case;
  std::vector<std::vector<torch::Tensor>> samples(static_cast<size_t>(cfg.tasks()));
  std::vector<int64_t> ids;
  for (int64_t j = 0; j < P; ++j) ids.push_back(c * P + j);  // partner row j of case c draws as sample c * P + j
  for (size_t k = 0; k < nets.size(); ++k) {
    if (opt.mc.passes > 0) {
      MCOptions mo = opt.mc;
      mo.seed = data::mix_seed(opt.mc.seed, k);
      auto p = mc_sample(nets[k], e.inputs, ids, mo);
      for (size_t t = 0; t < p.size(); ++t) samples[t].push_back(p[t]);
    } else {
      const Mode before = nets[k]->mode();
      nets[k]->set_mode(Mode::Eval);
      torch::NoGradGuard ng;
      auto r = nets[k]->forward(e.inputs);
      nets[k]->set_mode(before);
      for (size_t t = 0; t < r.logits.size(); ++t)
        samples[t].push_back(torch::softmax(r.logits[t].to(torch::kFloat32), 1).cpu().unsqueeze(0));
    }
  }
  std::vector<torch::Tensor> out;
  for (auto& v : samples) out.push_back(torch::cat(v, 0));
  return out;
}

}  // namespace

Predictor open_predictor(const std::string& path, torch::Device device, const std::string& partners_from) {
  Predictor p;
  std::optional<training::RunFolder> run;
  if (fs::is_directory(path)) {
    auto e = training::open_ensemble(path, device);
    p.nets = e.nets;
    p.calibration = training::run_files::read_calibration(path);
    run = e.run;
    p.pairing = e.run.data.paired ? "paired" : "unpaired";
  } else {
    auto loaded = io::load_model(path);
    loaded.net->to(device);
    p.nets.push_back(loaded.net);
    p.calibration = calibration::model_calibration(loaded.metadata, path);
    const auto it = loaded.metadata.find(io::kPairingKey);
    p.pairing = it == loaded.metadata.end() ? "unknown" : it->second;
    if (p.pairing != "paired" && p.pairing != "unpaired" && p.pairing != "unknown")
      throw Error(path + ": metadata " + io::kPairingKey + ": found '" + p.pairing + "', allowed paired or unpaired");
  }
  if (!partners_from.empty()) {
    if (run) throw Error("--partners-from is for a bare model file; " + path + " is a folder with its own partner bank");
    run = training::RunFolder::open(partners_from);
    if (run->data.paired) throw Error(partners_from + ": a paired run has no partner bank");
    if (p.pairing == "paired") throw Error(path + ": a model trained on paired data takes no partners");
    p.pairing = "unpaired";
  }
  if (run && !run->data.paired) p.bank = run->partner_bank(p.nets[0]->config());
  return p;
}

nlohmann::json predict(std::vector<DRIFANet>& nets, const std::vector<std::vector<std::string>>& cases,
                       const PredictOptions& opt) {
  if (nets.empty()) throw Error("predict needs at least one model");
  const auto& cfg = nets[0]->config();
  std::string names;
  for (int64_t m = 0; m < cfg.modalities; ++m) names += (m ? ", " : "") + cfg.modality_name(m);
  const bool unpaired = opt.bank != nullptr;
  data::ImageCache cache({static_cast<int>(cfg.image_size), static_cast<int>(cfg.in_channels), 8, opt.dicom});
  nlohmann::json out = nlohmann::json::array();
  for (size_t c = 0; c < cases.size(); ++c) {
    const auto& paths = cases[c];
    const auto where = "case " + std::to_string(c + 1);
    if (static_cast<int64_t>(paths.size()) != cfg.modalities)
      throw Error(where + ": the model takes " + std::to_string(cfg.modalities) + " images, one per modality (" + names +
                  "); got " + std::to_string(paths.size()) +
                  ". To give only some, name them: -i NAME=PATH (or leave the CSV cell empty)");
    std::vector<bool> given(paths.size());
    std::vector<torch::Tensor> images(paths.size());
    nlohmann::json jg = nlohmann::json::array(), jm = nlohmann::json::array();
    for (size_t m = 0; m < paths.size(); ++m) {
      given[m] = !paths[m].empty();
      (given[m] ? jg : jm).push_back(cfg.modality_name(static_cast<int64_t>(m)));
      if (!given[m]) continue;
      if (!fs::exists(paths[m])) throw Error(paths[m] + ": no such image");
      images[m] = data::to_tensor(cache.get(paths[m])).unsqueeze(0).to(opt.device);
    }
    if (jg.empty()) throw Error(where + ": no image given; the model needs at least one of " + names);
    if (!jm.empty() && opt.unpaired_without_bank)
      throw Error(where + ": no image of " + jm.dump() + "; this model was trained on unpaired data, so a missing modality is "
                  "replaced by partners from its run: give --partners-from RUN_DIR (the run folder it came from)");
    inputs::InputPlan plan;
    if (!jm.empty() && unpaired) {
      plan.bank = opt.bank;
      plan.partners = opt.partners;
    }
    plan.check(cfg);
    const auto e = inputs::expand(images, {given}, plan);
    const auto samples = case_samples(nets, e, static_cast<int64_t>(c), opt);
    nlohmann::json inputs_json = {{"given", jg},
                                  {"absent", plan.marginalising() ? nlohmann::json::array() : jm},
                                  {"marginalised", plan.marginalising() ? jm : nlohmann::json::array()},
                                  {"partners", plan.marginalising() ? nlohmann::json(plan.partners) : nlohmann::json(nullptr)}};
    nlohmann::json jc = {{"case", c + 1}, {"images", paths}, {"inputs", inputs_json}, {"tasks", nlohmann::json::object()}};
    for (int64_t t = 0; t < cfg.tasks(); ++t) {
      if (unpaired && !given[static_cast<size_t>(t)]) {
        // An unpaired task is its own modality's; without that image there is nothing to predict.
        jc["tasks"][cfg.task_name(t)] = {{"predicted", false}, {"reason", "its modality (" + cfg.modality_name(t) + ") was not given"}};
        continue;
      }
      const auto method = calibration::method_for(static_cast<int64_t>(nets.size()), opt.mc.passes);
      const auto* cal = opt.calibration ? opt.calibration->find(cfg.task_name(t), method) : nullptr;
      const auto& raw = samples[static_cast<size_t>(t)];  // [S, P, K]
      const auto tempered = cal ? calibration::calibrate(raw, cal) : raw;
      const auto m = sample_measures(tempered.reshape({-1, 1, tempered.size(2)}));
      const int64_t pred = m.predicted[0].item<int64_t>();
      nlohmann::json probs = nlohmann::json::object();
      for (int64_t k = 0; k < cfg.classes[t]; ++k) probs[cfg.class_name(t, k)] = m.mean[0][k].item<double>();
      // The entropy splits into aleatoric (expected entropy), model (MC/ensemble mutual
      // information) and, with partners, the part due to the partner drawn.
      double partner_info = 0, partner_sd = 0;
      if (e.per_case > 1) {
        const auto sp = inputs::partner_spread(tempered.unsqueeze(1));
        partner_info = sp.information[0].item<double>();
        partner_sd = sp.sd[0].item<double>();
      }
      nlohmann::json jt = {{"class", cfg.class_name(t, pred)},
                           {"probability", m.mean[0][pred].item<double>()},
                           {"probabilities", probs},
                           {"predictive_entropy", m.predictive_entropy[0].item<double>()},
                           {"expected_entropy", m.expected_entropy[0].item<double>()},
                           {"mutual_information", std::max(0.0, m.mutual_information[0].item<double>() - partner_info)},
                           {"partner_information", e.per_case > 1 ? nlohmann::json(partner_info) : nlohmann::json(nullptr)},
                           {"partner_sd", e.per_case > 1 ? nlohmann::json(partner_sd) : nlohmann::json(nullptr)},
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
          if (!given[static_cast<size_t>(mod)]) continue;  // no image to explain
          explain::GradCAMOptions go;
          go.task = t;
          go.modality = mod;
          go.target_class = pred;
          // With partners: the mean of the maps over the case's partner rows.
          const auto g = explain::grad_cam(nets[0], e.inputs, go);
          const auto map = g.map.mean(0);
          const auto file = (fs::path(opt.gradcam_dir) / ("case" + std::to_string(c + 1) + "_" + cfg.task_name(t) + "_" +
                                                          cfg.modality_name(mod) + ".png")).string();
          data::write_image(file, explain::overlay(data::decode_image(paths[static_cast<size_t>(mod)], opt.dicom), map));
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
                      {"partner_bank", unpaired ? nlohmann::json({{"size", opt.bank->size()}, {"seed", opt.bank->seed}}) : nlohmann::json(nullptr)},
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
