#include "drifa/uncertainty/predict.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "drifa/data/csv.h"
#include "drifa/data/loader.h"
#include "drifa/data/sources.h"
#include "drifa/data/split.h"
#include "drifa/data/transforms.h"
#include "drifa/error.h"
#include "drifa/evaluation/aggregate.h"
#include "drifa/explain/gradcam.h"
#include "drifa/inference/inferer.h"
#include "drifa/inference/method.h"
#include "drifa/io/settings.h"
#include "drifa/runs/model_file.h"
#include "drifa/runs/ensemble.h"
#include "drifa/runs/files.h"
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

std::vector<std::string> read_case_groups(const std::string& path, const std::string& column) {
  const auto t = data::read_csv(path);
  const int col = t.column(column, path);
  std::vector<std::string> g;
  for (const auto& r : t.rows) {
    g.push_back(r[static_cast<size_t>(col)]);
    if (g.back().empty())
      throw Error(path + ": case " + std::to_string(g.size()) + ": empty group in column " + column + " (--group-column)");
  }
  return g;
}

nlohmann::json aggregate_cases(const nlohmann::json& cases, const std::vector<std::string>& groups, const std::string& how,
                               const ModelConfig& cfg) {
  if (how != "mean" && how != "max") throw Error("--aggregate: found '" + how + "', allowed mean or max");
  if (groups.size() != cases.size()) throw Error("aggregate: one group per case needed");
  std::vector<std::string> order;
  std::map<std::string, std::vector<size_t>> members;
  for (size_t c = 0; c < groups.size(); ++c) {
    if (!members.count(groups[c])) order.push_back(groups[c]);
    members[groups[c]].push_back(c);
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& g : order) {
    nlohmann::json jg = {{"group", g}, {"aggregate", how}, {"cases", nlohmann::json::array()}, {"tasks", nlohmann::json::object()}};
    for (auto c : members[g]) jg["cases"].push_back(cases[c]["case"]);
    for (int64_t t = 0; t < cfg.tasks(); ++t) {
      const auto name = cfg.task_name(t);
      const int64_t K = cfg.classes[static_cast<size_t>(t)];
      std::vector<double> rows;  // the group's cases that predicted this task, [n, K]
      for (auto c : members[g]) {
        const auto& jt = cases[c]["tasks"][name];
        if (!jt.contains("probabilities")) continue;
        const auto& jp = jt["probabilities"];  // {class name: probability}
        for (int64_t k = 0; k < K; ++k) rows.push_back(jp.at(cfg.class_name(t, k)).get<double>());
      }
      const auto n = static_cast<int64_t>(rows.size()) / K;
      if (n == 0) continue;
      const auto agg = evaluation::combine_rows(torch::tensor(rows, torch::kFloat64).view({n, K}), 0, how).contiguous();
      const double* acc = agg.data_ptr<double>();
      const auto best = static_cast<int64_t>(std::max_element(acc, acc + K) - acc);
      nlohmann::json probs = nlohmann::json::object();
      for (int64_t k = 0; k < K; ++k) probs[cfg.class_name(t, k)] = acc[k];
      jg["tasks"][name] = {{"class", cfg.class_name(t, best)}, {"probability", acc[best]}, {"probabilities", probs}, {"images", n}};
    }
    out.push_back(jg);
  }
  return out;
}

namespace {

std::string modality_list(const ModelConfig& cfg) {
  std::string names;
  for (int64_t m = 0; m < cfg.modalities; ++m) names += (m ? ", " : "") + cfg.modality_name(m);
  return names;
}

// Per task [S, R, K_t]: every model's deterministic pass or MC passes (S) for each of the R rows
// of the batch; row_ids seed each row's Monte Carlo masks.
std::vector<torch::Tensor> batch_samples(std::vector<DRIFANet>& nets, const std::vector<torch::Tensor>& inputs, int64_t per_case,
                                         const std::vector<int64_t>& row_ids, const PredictOptions& opt) {
  const auto& cfg = nets[0]->config();
  std::vector<std::vector<torch::Tensor>> samples(static_cast<size_t>(cfg.tasks()));
  const auto& method = opt.method(static_cast<int64_t>(nets.size()));
  for (size_t k = 0; k < nets.size(); ++k) {
    inference::Inferer inferer(nets[k], {opt.device, opt.mc.bf16, {}, {}});
    inference::MCOptions mo = opt.mc;
    mo.seed = data::mix_seed(opt.mc.seed, k);
    inference::DrawOptions draw{opt.tta, mo};
    draw.tta.mc = opt.tta.views > 0 && opt.mc.passes > 0;
    if (method.draws(draw)) {  // test-time augmentation
      auto p = method.draw(inferer, inferer.rows(inputs, per_case, row_ids), draw);
      for (size_t t = 0; t < p.size(); ++t) samples[t].push_back(p[t]);
    } else if (opt.mc.passes > 0) {
      auto p = inferer.mc(inferer.prepare(inputs, per_case, row_ids), mo);
      for (size_t t = 0; t < p.size(); ++t) samples[t].push_back(p[t]);
    } else {
      const auto pass = inferer.rows(inputs, per_case, row_ids);
      for (size_t t = 0; t < pass.probs.size(); ++t) samples[t].push_back(pass.probs[t].unsqueeze(0));
    }
  }
  std::vector<torch::Tensor> out;
  for (auto& v : samples) out.push_back(torch::cat(v, 0));
  return out;
}

// Rows first .. first+n-1 of a batch's inputs (absent modalities stay undefined).
std::vector<torch::Tensor> rows(const std::vector<torch::Tensor>& x, int64_t first, int64_t n) {
  std::vector<torch::Tensor> out;
  for (const auto& t : x) out.push_back(t.defined() ? t.narrow(0, first, n) : t);
  return out;
}

// One task's answer for one case from its samples [S, P, K] (P partner rows).
// pred: the predicted class.
nlohmann::json task_json(const ModelConfig& cfg, int64_t t, const torch::Tensor& raw, int64_t id, int64_t models,
                         const PredictOptions& opt, int64_t& pred) {
  const auto method = opt.method(models).name();
  const auto* cal = opt.calibration ? opt.calibration->find(cfg.task_name(t), method) : nullptr;
  const auto tempered = cal ? calibration::calibrate(raw, cal) : raw;
  const auto m = sample_measures(tempered.reshape({-1, 1, tempered.size(2)}));
  pred = m.predicted[0].item<int64_t>();
  nlohmann::json probs = nlohmann::json::object();
  for (int64_t k = 0; k < cfg.classes[t]; ++k) probs[cfg.class_name(t, k)] = m.mean[0][k].item<double>();
  // The entropy splits into aleatoric (expected entropy), model (MC/ensemble mutual
  // information) and, with partners, the part due to the partner drawn.
  const bool partners = raw.size(1) > 1;
  double partner_info = 0, partner_sd = 0;
  if (partners) {
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
                       {"partner_information", partners ? nlohmann::json(partner_info) : nlohmann::json(nullptr)},
                       {"partner_sd", partners ? nlohmann::json(partner_sd) : nlohmann::json(nullptr)},
                       {"spread", m.spread[0].item<double>()},
                       {"method", method},
                       {"temperature", cal ? nlohmann::json(cal->temperature) : nlohmann::json(nullptr)}};
  if (cal) {
    const auto u = calibration::part_draws(opt.mc.seed, calibration::Part::Predict, {id});
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
  return jt;
}

// Grad-CAM overlays of one case for task t's predicted class, one per given modality; the mean
// of the maps over the case's partner rows.
nlohmann::json case_gradcam(DRIFANet& net, const CaseImages& c, const std::vector<torch::Tensor>& case_inputs, int64_t t,
                            int64_t pred, int64_t id, const OverlaySink& sink) {
  const auto& cfg = net->config();
  nlohmann::json maps = nlohmann::json::object();
  for (int64_t mod = 0; mod < cfg.modalities; ++mod) {
    if (!c.given(mod)) continue;  // no image to explain
    const auto& decoded = c.decoded.at(static_cast<size_t>(mod));
    if (decoded.empty()) throw Error("predict: Grad-CAM overlays need the decoded images (keep_decoded)");
    explain::GradCAMOptions go;
    go.task = t;
    go.modality = mod;
    go.target_class = pred;
    const auto g = explain::grad_cam(net, case_inputs, go);
    maps[cfg.modality_name(mod)] = sink(id, cfg.task_name(t), cfg.modality_name(mod), explain::overlay(decoded, g.map.mean(0)));
  }
  return maps;
}

void check_entries(size_t given, const ModelConfig& cfg, const std::string& where) {
  if (static_cast<int64_t>(given) != cfg.modalities)
    throw Error(where + ": the model takes " + std::to_string(cfg.modalities) + " images, one per modality (" +
                modality_list(cfg) + "); got " + std::to_string(given) +
                ". To give only some, name them: -i NAME=PATH (or leave the CSV cell empty)");
}

}  // namespace

std::vector<bool> CaseImages::pattern() const {
  std::vector<bool> p;
  for (const auto& x : images) p.push_back(x.defined());
  return p;
}

CaseImages load_case(const std::vector<std::string>& paths, const ModelConfig& cfg, data::ImageCache& cache,
                     bool keep_decoded, const std::string& where) {
  check_entries(paths.size(), cfg, where);
  CaseImages c;
  c.names = paths;
  c.images.resize(paths.size());
  c.decoded.resize(paths.size());
  for (size_t m = 0; m < paths.size(); ++m) {
    if (paths[m].empty()) continue;
    const auto ref = data::parse_slice_ref(paths[m]);
    const bool slice = ref && cache.options().volumes.count(ref->modality);
    if (!fs::exists(slice ? ref->volume : paths[m])) throw Error((slice ? ref->volume : paths[m]) + ": no such " + (slice ? "volume" : "image"));
    c.images[m] = data::to_tensor(cache.get(paths[m]));
    if (keep_decoded) c.decoded[m] = data::decode_for_display(paths[m], cache.options());
  }
  return c;
}

CaseImages decode_case(const std::vector<std::string>& bytes, const std::vector<std::string>& names,
                       const ModelConfig& cfg, const data::ImageOptions& io, bool keep_decoded) {
  if (static_cast<int64_t>(bytes.size()) != cfg.modalities || names.size() != bytes.size())
    throw Error("decode_case: one entry per modality (" + modality_list(cfg) + ") is needed");
  CaseImages c;
  c.images.resize(bytes.size());
  c.decoded.resize(bytes.size());
  for (size_t m = 0; m < bytes.size(); ++m) {
    if (bytes[m].empty()) {
      c.names.emplace_back();
      continue;
    }
    c.names.push_back(names[m]);
    auto decoded = data::decode_image_bytes(bytes[m], names[m], io.dicom, io.max_pixels);
    c.images[m] = data::to_tensor(data::preprocess(decoded, io.size, io.channels, io.min_side, names[m]));
    if (keep_decoded) c.decoded[m] = std::move(decoded);
  }
  return c;
}

void check_case(const CaseImages& c, const ModelConfig& cfg, const PredictOptions& opt, const std::string& where) {
  check_entries(c.images.size(), cfg, where);
  nlohmann::json missing = nlohmann::json::array();
  int64_t given = 0;
  for (int64_t m = 0; m < cfg.modalities; ++m) {
    if (c.given(m)) ++given;
    else missing.push_back(cfg.modality_name(m));
  }
  if (given == 0) throw Error(where + ": no image given; the model needs at least one of " + modality_list(cfg));
  if (!missing.empty() && opt.unpaired_without_bank)
    throw Error(where + ": no image of " + missing.dump() + "; this model was trained on unpaired data, so a missing modality is "
                "replaced by partners from its run: give --partners-from RUN_DIR (the run folder it came from)");
}

std::vector<nlohmann::json> predict_cases(std::vector<DRIFANet>& nets, const std::vector<const CaseImages*>& cases,
                                          const std::vector<int64_t>& ids, const PredictOptions& opt,
                                          const OverlaySink& sink) {
  if (nets.empty()) throw Error("predict needs at least one model");
  if (cases.empty() || ids.size() != cases.size()) throw Error("predict_cases: one id per case, and at least one case");
  const auto& cfg = nets[0]->config();
  const auto pattern = cases[0]->pattern();
  for (size_t i = 0; i < cases.size(); ++i) {
    check_case(*cases[i], cfg, opt, "case " + std::to_string(ids[i] + 1));
    if (cases[i]->pattern() != pattern) throw Error("predict_cases: the cases of one batch must give the same modalities");
  }
  const bool unpaired = opt.bank != nullptr;
  nlohmann::json jg = nlohmann::json::array(), jm = nlohmann::json::array();
  for (int64_t m = 0; m < cfg.modalities; ++m) (pattern[static_cast<size_t>(m)] ? jg : jm).push_back(cfg.modality_name(m));
  inputs::InputPlan plan;
  if (!jm.empty() && unpaired) {
    plan.bank = opt.bank;
    plan.partners = opt.partners;
  }
  plan.check(cfg);

  const int64_t B = static_cast<int64_t>(cases.size());
  std::vector<torch::Tensor> images(pattern.size());
  for (size_t m = 0; m < pattern.size(); ++m) {
    if (!pattern[m]) continue;
    std::vector<torch::Tensor> xs;
    for (const auto* c : cases) xs.push_back(c->images[m]);
    images[m] = torch::stack(xs).to(opt.device);
  }
  const auto e = inputs::expand(images, std::vector<std::vector<bool>>(static_cast<size_t>(B), pattern), plan);
  const int64_t P = e.per_case;
  std::vector<int64_t> row_ids;  // partner row j of case id c draws as sample c * P + j
  for (auto id : ids)
    for (int64_t j = 0; j < P; ++j) row_ids.push_back(id * P + j);
  const auto samples = batch_samples(nets, e.inputs, P, row_ids, opt);

  const nlohmann::json inputs_json = {{"given", jg},
                                      {"absent", plan.marginalising() ? nlohmann::json::array() : jm},
                                      {"marginalised", plan.marginalising() ? jm : nlohmann::json::array()},
                                      {"partners", plan.marginalising() ? nlohmann::json(plan.partners) : nlohmann::json(nullptr)}};
  std::vector<nlohmann::json> out;
  for (int64_t i = 0; i < B; ++i) {
    const auto& c = *cases[static_cast<size_t>(i)];
    const int64_t id = ids[static_cast<size_t>(i)];
    nlohmann::json jc = {{"case", id + 1}, {"images", c.names}, {"inputs", inputs_json}, {"tasks", nlohmann::json::object()}};
    for (int64_t t = 0; t < cfg.tasks(); ++t) {
      if (unpaired && !c.given(t)) {
        // An unpaired task is its own modality's; without that image there is nothing to predict.
        jc["tasks"][cfg.task_name(t)] = {{"predicted", false}, {"reason", "its modality (" + cfg.modality_name(t) + ") was not given"}};
        continue;
      }
      const auto raw = samples[static_cast<size_t>(t)].narrow(1, i * P, P);  // [S, P, K]
      int64_t pred = 0;
      auto jt = task_json(cfg, t, raw, id, static_cast<int64_t>(nets.size()), opt, pred);
      if (sink) jt["gradcam"] = case_gradcam(nets[0], c, rows(e.inputs, i * P, P), t, pred, id, sink);
      jc["tasks"][cfg.task_name(t)] = jt;
    }
    out.push_back(jc);
  }
  return out;
}

Predictor open_predictor(const std::string& path, torch::Device device, const std::string& partners_from) {
  Predictor p;
  std::optional<runs::RunFolder> run;
  io::Metadata loaded_metadata;
  if (fs::is_directory(path)) {
    auto e = runs::open_ensemble(path, device);
    p.nets = e.nets;
    p.calibration = e.calibration();
    run = e.run;
    p.pairing = e.run.data.paired ? "paired" : "unpaired";
  } else {
    auto loaded = runs::load_model(path);
    loaded_metadata = loaded.metadata;
    loaded.net->to(device);
    p.nets.push_back(loaded.net);
    p.calibration = runs::files::read_model_calibration(loaded.metadata, path);
    const auto it = loaded.metadata.find(runs::files::kPairingKey);
    p.pairing = it == loaded.metadata.end() ? "unknown" : it->second;
    if (p.pairing != "paired" && p.pairing != "unpaired" && p.pairing != "unknown")
      throw Error(path + ": metadata " + runs::files::kPairingKey + ": found '" + p.pairing + "', allowed paired or unpaired");
  }
  if (!partners_from.empty()) {
    if (run) throw Error("--partners-from is for a bare model file; " + path + " is a folder with its own partner bank");
    run = runs::RunFolder::open(partners_from);
    if (run->data.paired) throw Error(partners_from + ": a paired run has no partner bank");
    if (p.pairing == "paired") throw Error(path + ": a model trained on paired data takes no partners");
    p.pairing = "unpaired";
  }
  if (run && !run->data.paired) p.bank = run->partner_bank(p.nets[0]->config());
  if (fs::is_directory(path)) {
    p.volumes = run->cfg.data.image_options().volumes;
    p.tta_transforms = run->cfg.tta_transforms(p.nets[0]->config());
  } else {
    if (auto it = loaded_metadata.find(runs::files::kVolumesKey); it != loaded_metadata.end())
      p.volumes = data::volume_recipes_from_json(it->second, int(p.nets[0]->config().in_channels), path);
    if (auto it = loaded_metadata.find(runs::files::kTtaKey); it != loaded_metadata.end()) {
      const auto where = path + ": metadata " + runs::files::kTtaKey;
      runs::RunConfig rc;
      rc.tta = runs::RunConfig::read_tta(settings::parse_json(it->second, where), where);
      p.tta_transforms = rc.tta_transforms(p.nets[0]->config());
    }
  }
  return p;
}

VolumeCases expand_volume_cases(const std::vector<std::vector<std::string>>& cases, const ModelConfig& cfg,
                                const std::map<std::string, data::VolumeOptions>& recipes, int64_t max_voxels) {
  VolumeCases out;
  for (size_t c = 0; c < cases.size(); ++c) {
    std::optional<size_t> vm;
    for (size_t m = 0; m < cases[c].size(); ++m) {
      const auto name = cfg.modality_name(static_cast<int64_t>(m));
      if (cases[c][m].empty() || !recipes.count(name) || data::parse_slice_ref(cases[c][m])) continue;
      if (vm) throw Error("case " + std::to_string(c + 1) + ": volumes for two modalities (" + cfg.modality_name(int64_t(*vm)) + ", " + name +
                          "); give one volume per case, the other modalities as images");
      vm = m;
    }
    if (!vm) {
      out.cases.push_back(cases[c]);
      continue;
    }
    const auto name = cfg.modality_name(static_cast<int64_t>(*vm));
    const auto& volume = cases[c][*vm];
    const auto& recipe = recipes.at(name);
    if (recipe.slices == "mask") throw Error(volume + ": the model's recipe selects slices by a mask; predict takes no mask yet");
    VolumeCases::Span span{c, name, volume, data::select_slices(data::read_volume_info(volume, max_voxels, recipe.series), recipe, nullptr, volume),
                           out.cases.size()};
    for (int64_t k : span.slices) {
      auto sc = cases[c];
      sc[*vm] = data::slice_ref(volume, name, k);
      out.cases.push_back(std::move(sc));
    }
    out.spans.push_back(std::move(span));
  }
  return out;
}

nlohmann::json volume_answers(const nlohmann::json& cases, const VolumeCases& v, const std::string& how, const ModelConfig& cfg) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : v.spans) {
    nlohmann::json slice_cases = nlohmann::json::array();
    for (size_t i = 0; i < s.slices.size(); ++i) slice_cases.push_back(cases.at(s.first + i));
    auto answer = aggregate_cases(slice_cases, std::vector<std::string>(s.slices.size(), s.volume), how, cfg).at(0);
    nlohmann::json curve = nlohmann::json::object();  // per task: each class's probability along the slice axis
    for (int64_t t = 0; t < cfg.tasks(); ++t) {
      const auto task = cfg.task_name(t);
      nlohmann::json per_class = nlohmann::json::object();
      for (int64_t k = 0; k < cfg.classes[size_t(t)]; ++k) {
        nlohmann::json p = nlohmann::json::array();
        for (const auto& jc : slice_cases)
          if (jc["tasks"].contains(task) && jc["tasks"][task].contains("probabilities"))
            p.push_back(jc["tasks"][task]["probabilities"].at(cfg.class_name(t, k)));
        if (!p.empty()) per_class[cfg.class_name(t, k)] = p;
      }
      if (!per_class.empty()) curve[task] = per_class;
    }
    out.push_back({{"case", s.case_index + 1}, {"modality", s.modality}, {"volume", s.volume}, {"slices", s.slices},
                   {"aggregate", how}, {"tasks", answer["tasks"]}, {"slice_cases", answer["cases"]}, {"curve", curve}});
  }
  return out;
}

nlohmann::json predict_envelope(size_t models, const PredictOptions& opt, nlohmann::json cases) {
  const bool unpaired = opt.bank != nullptr;
  nlohmann::json j = {{"models", models},
                      {"passes", opt.mc.passes},
                      {"calibrated", opt.calibration != nullptr},
                      {"partner_bank", unpaired ? nlohmann::json({{"size", opt.bank->size()}, {"seed", opt.bank->seed}}) : nlohmann::json(nullptr)},
                      {"cases", std::move(cases)}};
  if (opt.tta.views > 0) j["views"] = opt.tta.views;  // test-time augmentation
  if (opt.calibration) {
    // MC and ensemble fits belong to the pass count they were made with; say both.
    j["calibration"] = {{"part", opt.calibration->part}, {"passes", opt.calibration->passes}, {"models", opt.calibration->models}};
    if (opt.mc.passes > 0 && opt.calibration->passes != opt.mc.passes)
      j["warning"] = "calibrated with " + std::to_string(opt.calibration->passes) + " Monte Carlo passes, predicted with " +
                     std::to_string(opt.mc.passes) + "; the temperature and the set are approximate";
  }
  return j;
}

nlohmann::json predict(std::vector<DRIFANet>& nets, const std::vector<std::vector<std::string>>& cases_in,
                       const PredictOptions& opt) {
  if (nets.empty()) throw Error("predict needs at least one model");
  const auto& cfg = nets[0]->config();
  for (size_t c = 0; c < cases_in.size(); ++c) check_entries(cases_in[c].size(), cfg, "case " + std::to_string(c + 1));
  data::ImageOptions io;
  io.size = static_cast<int>(cfg.image_size);
  io.channels = static_cast<int>(cfg.in_channels);
  io.dicom = opt.dicom;
  io.volumes = opt.volumes;
  io.max_volume_voxels = opt.max_volume_voxels;
  data::ImageCache cache(io);
  if (!opt.volumes.empty()) {
    const auto vc = expand_volume_cases(cases_in, cfg, opt.volumes, opt.max_volume_voxels);
    if (!vc.spans.empty()) {
      PredictOptions flat = opt;
      flat.volumes.clear();  // the slice references decode through `cache`'s recipes
      auto j = predict(nets, vc.cases, flat, &cache);
      j["volumes"] = volume_answers(j["cases"], vc, opt.volume_aggregate, cfg);
      return j;
    }
  }
  return predict(nets, cases_in, opt, &cache);
}

nlohmann::json predict(std::vector<DRIFANet>& nets, const std::vector<std::vector<std::string>>& cases,
                       const PredictOptions& opt, data::ImageCache* cache_ptr) {
  const auto& cfg = nets[0]->config();
  auto& cache = *cache_ptr;
  const bool overlays = !opt.gradcam_dir.empty();
  OverlaySink sink;
  if (overlays)
    sink = [&](int64_t id, const std::string& task, const std::string& modality, const cv::Mat& overlay) {
      const auto file = (fs::path(opt.gradcam_dir) / ("case" + std::to_string(id + 1) + "_" + task + "_" + modality + ".png")).string();
      data::write_image(file, overlay);
      return nlohmann::json(file);
    };
  // Cases with the same modalities given run together, kBatch at a time, in their own order.
  constexpr size_t kBatch = 16;
  std::map<std::vector<bool>, std::vector<size_t>> groups;
  for (size_t c = 0; c < cases.size(); ++c) {
    check_entries(cases[c].size(), cfg, "case " + std::to_string(c + 1));
    std::vector<bool> p;
    for (const auto& path : cases[c]) p.push_back(!path.empty());
    groups[p].push_back(c);
  }
  std::vector<nlohmann::json> out(cases.size());
  for (const auto& [pattern, members] : groups)
    for (size_t first = 0; first < members.size(); first += kBatch) {
      std::vector<CaseImages> loaded;
      std::vector<int64_t> ids;
      for (size_t i = first; i < std::min(members.size(), first + kBatch); ++i) {
        loaded.push_back(load_case(cases[members[i]], cfg, cache, overlays, "case " + std::to_string(members[i] + 1)));
        ids.push_back(static_cast<int64_t>(members[i]));
      }
      std::vector<const CaseImages*> ptrs;
      for (const auto& c : loaded) ptrs.push_back(&c);
      auto js = predict_cases(nets, ptrs, ids, opt, sink);
      for (size_t i = 0; i < js.size(); ++i) out[static_cast<size_t>(ids[i])] = std::move(js[i]);
    }
  return predict_envelope(nets.size(), opt, nlohmann::json(out));
}

}  // namespace drifa::uncertainty
