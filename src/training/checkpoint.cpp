#include "drifa/training/checkpoint.h"

#include <sstream>

#include <torch/torch.h>

#include "drifa/error.h"
#include "drifa/io/model_file.h"

namespace drifa::training {

nlohmann::json TrainerState::to_json() const {
  return {{"epoch", epoch},         {"best_val_loss", best_val_loss}, {"best_epoch", best_epoch}, {"lr", lr},
          {"plateau_best", plateau_best}, {"plateau_wait", plateau_wait}, {"early_wait", early_wait}};
}

TrainerState TrainerState::from_json(const nlohmann::json& j) {
  TrainerState s;
  s.epoch = j.at("epoch").get<int64_t>();
  s.best_val_loss = j.at("best_val_loss").get<double>();
  s.best_epoch = j.at("best_epoch").get<int64_t>();
  s.lr = j.at("lr").get<double>();
  s.plateau_best = j.at("plateau_best").get<double>();
  s.plateau_wait = j.at("plateau_wait").get<int>();
  s.early_wait = j.at("early_wait").get<int>();
  return s;
}

void save_checkpoint(const std::string& path, DRIFANet& net, torch::optim::Adam& opt, const TrainerState& s) {
  io::NamedTensors ts;
  for (auto& [n, t] : io::model_state(*net)) ts.emplace_back("model." + n, t.detach().cpu());
  std::ostringstream buf;
  torch::serialize::OutputArchive archive;
  opt.save(archive);
  archive.save_to(buf);
  const std::string bytes = buf.str();
  auto blob = torch::empty({static_cast<int64_t>(bytes.size())}, torch::kUInt8);
  std::memcpy(blob.data_ptr(), bytes.data(), bytes.size());
  ts.emplace_back("optimizer", blob);
  io::save_safetensors(path, ts,
                       {{io::kConfigKey, net->config().to_json().dump()}, {"drifa.trainer_state", s.to_json().dump()}});
}

TrainerState load_checkpoint(const std::string& path, DRIFANet& net, torch::optim::Adam& opt) {
  auto f = io::load_safetensors(path);
  auto cfg = io::read_model_config(f, path);
  if (cfg.to_json() != net->config().to_json())
    throw Error(path + ": the checkpoint is for another model configuration than this run's");
  io::NamedTensors model;
  const torch::Tensor* blob = nullptr;
  for (auto& [n, t] : f.tensors) {
    if (n.rfind("model.", 0) == 0) model.emplace_back(n.substr(6), t);
    else if (n == "optimizer") blob = &t;
  }
  if (!blob) throw Error(path + ": checkpoint has no optimizer state");
  io::load_state(*net, model, path);
  try {
    std::string bytes(static_cast<const char*>(blob->data_ptr()), static_cast<size_t>(blob->numel()));
    std::istringstream in(bytes);
    torch::serialize::InputArchive archive;
    archive.load_from(in);
    opt.load(archive);
  } catch (const c10::Error& e) {
    throw Error(path + ": optimizer state is unreadable: " + e.what_without_backtrace());
  }
  auto it = f.metadata.find("drifa.trainer_state");
  if (it == f.metadata.end()) throw Error(path + ": checkpoint has no trainer state");
  try {
    return TrainerState::from_json(nlohmann::json::parse(it->second));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": trainer state is malformed: " + e.what());
  }
}

}  // namespace drifa::training
