#include "drifa/training/checkpoint.h"

#include <sstream>

#include <torch/torch.h>

#include "drifa/error.h"
#include "drifa/io/settings.h"
#include "drifa/runs/model_file.h"

namespace drifa::training {

nlohmann::json TrainerState::to_json() const {
  return {{"epoch", epoch},         {"best_val_loss", best_val_loss}, {"best_epoch", best_epoch}, {"lr", lr},
          {"plateau_best", plateau_best}, {"plateau_wait", plateau_wait}, {"early_wait", early_wait}};
}

TrainerState TrainerState::from_json(const nlohmann::json& j, const std::string& source) {
  namespace L = settings::limits;
  settings::Table t(j, source, runs::files::kTrainerStateKey);
  for (const char* k : {"epoch", "best_val_loss", "best_epoch", "lr", "plateau_best", "plateau_wait", "early_wait"})
    if (!t.has(k)) t.fail(k, "missing");
  TrainerState s;
  s.epoch = t.integer("epoch", 0, {0, L::kEpochs.hi});
  s.best_val_loss = t.real("best_val_loss", 0, {0.0, 1e300});
  s.best_epoch = t.integer("best_epoch", 0, {0, s.epoch});
  s.lr = t.real("lr", 0, L::kLearningRate);
  s.plateau_best = t.real("plateau_best", 0, {0.0, 1e300});
  s.plateau_wait = static_cast<int>(t.integer("plateau_wait", 0, {0, L::kPatience.hi}));
  s.early_wait = static_cast<int>(t.integer("early_wait", 0, {0, L::kPatience.hi}));
  t.finish();
  return s;
}

void save_checkpoint(const std::string& path, DRIFANet& net, torch::optim::Adam& opt, const TrainerState& s) {
  io::NamedTensors ts;
  for (auto& [n, t] : runs::model_state(*net)) ts.emplace_back("model." + n, t.detach().cpu());
  std::ostringstream buf;
  torch::serialize::OutputArchive archive;
  opt.save(archive);
  archive.save_to(buf);
  const std::string bytes = buf.str();
  auto blob = torch::empty({static_cast<int64_t>(bytes.size())}, torch::kUInt8);
  std::memcpy(blob.data_ptr(), bytes.data(), bytes.size());
  ts.emplace_back("optimizer", blob);
  io::save_safetensors(path, ts,
                       {{runs::files::kConfigKey, net->config().to_json().dump()}, {runs::files::kTrainerStateKey, s.to_json().dump()}});
}

TrainerState load_checkpoint(const std::string& path, DRIFANet& net, torch::optim::Adam& opt) {
  auto f = io::load_safetensors(path);
  auto cfg = runs::read_model_config(f, path);
  if (cfg.to_json() != net->config().to_json())
    throw Error(path + ": the checkpoint is for another model configuration than this run's");
  io::NamedTensors model;
  const torch::Tensor* blob = nullptr;
  for (auto& [n, t] : f.tensors) {
    if (n.rfind("model.", 0) == 0) model.emplace_back(n.substr(6), t);
    else if (n == "optimizer") blob = &t;
  }
  if (!blob) throw Error(path + ": checkpoint has no optimizer state");
  runs::load_state(*net, model, path);
  try {
    std::string bytes(static_cast<const char*>(blob->data_ptr()), static_cast<size_t>(blob->numel()));
    std::istringstream in(bytes);
    torch::serialize::InputArchive archive;
    archive.load_from(in);
    opt.load(archive);
  } catch (const c10::Error& e) {
    throw Error(path + ": optimizer state is unreadable (" + std::string(e.what_without_backtrace()).substr(0, 200) + ")");
  } catch (const std::exception& e) {
    throw Error(path + ": optimizer state is unreadable (" + std::string(e.what()).substr(0, 200) + ")");
  }
  auto it = f.metadata.find(runs::files::kTrainerStateKey);
  if (it == f.metadata.end()) throw Error(path + ": checkpoint has no trainer state");
  return TrainerState::from_json(settings::parse_json(it->second, path + ": metadata drifa.trainer_state"), path);
}

}  // namespace drifa::training
