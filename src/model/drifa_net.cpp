#include "drifa/model/drifa_net.h"

#include <torch/torch.h>

#include "drifa/error.h"
#include "drifa/model/summary.h"

namespace drifa {

DRIFANetImpl::DRIFANetImpl(const ModelConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  check_fits_in_memory(cfg_, 1, false, "model");  // before any weight is allocated
  branches = register_module("branches", torch::nn::ModuleList());
  for (int64_t m = 0; m < cfg_.modalities; ++m) {
    Branch b(cfg_);
    branches->push_back(b);
    branch_.push_back(b);
  }
  fusions = register_module("fusions", torch::nn::ModuleList());
  if (has_mifa(cfg_.attention)) {
    for (int64_t i = 0; i < cfg_.stages(); ++i) {
      MIFA f(cfg_.widths[i], cfg_.modalities);
      fusions->push_back(f);
      fusion_.push_back(f);
    }
  }
  heads = register_module("heads", torch::nn::ModuleList());
  for (int64_t t = 0; t < cfg_.tasks(); ++t) {
    torch::nn::Linear h(cfg_.feature_dim(), cfg_.classes[t]);
    heads->push_back(h);
    head_.push_back(h);
  }
  initialise(*this);
}

void DRIFANetImpl::set_mode(Mode mode) {
  train(mode == Mode::Train);
  mc_sampling_ = mode == Mode::MCSample;
}

Mode DRIFANetImpl::mode() const {
  if (is_training()) return Mode::Train;
  return mc_sampling_ ? Mode::MCSample : Mode::Eval;
}

void DRIFANetImpl::check_inputs(const std::vector<torch::Tensor>& inputs) const {
  if (static_cast<int64_t>(inputs.size()) != cfg_.modalities)
    throw Error("the model takes " + std::to_string(cfg_.modalities) + " modalities, got " +
                std::to_string(inputs.size()) + " inputs");
  const torch::Tensor* first = nullptr;
  for (size_t m = 0; m < inputs.size(); ++m) {
    const auto& x = inputs[m];
    if (!x.defined()) continue;  // absent
    if (x.dim() != 4 || x.size(1) != cfg_.in_channels)
      throw Error("input " + std::to_string(m) + " (" + cfg_.modality_name(m) + ") must be [B, " +
                  std::to_string(cfg_.in_channels) + ", H, W], got " + c10::str(x.sizes()));
    if (!first) first = &x;
    if (x.size(0) != first->size(0))
      throw Error("inputs disagree on the batch size: " + std::to_string(first->size(0)) + " vs " +
                  std::to_string(x.size(0)));
  }
  if (!first) throw Error("every modality is absent: the model needs at least one input");
}

void DRIFANetImpl::check_presence(const torch::Tensor& presence, int64_t batch) const {
  if (!presence.defined()) return;
  if (presence.dim() != 2 || presence.size(0) != batch || presence.size(1) != cfg_.modalities)
    throw Error("presence must be [" + std::to_string(batch) + ", " + std::to_string(cfg_.modalities) + "], got " +
                c10::str(presence.sizes()));
}

std::vector<torch::Tensor> DRIFANetImpl::prefix(const std::vector<torch::Tensor>& inputs) {
  check_inputs(inputs);
  std::vector<torch::Tensor> h(inputs.size());  // an absent modality stays undefined
  for (size_t m = 0; m < inputs.size(); ++m)
    if (inputs[m].defined()) h[m] = branch_[m]->stem(inputs[m]);
  for (size_t m = 0; m < h.size(); ++m)
    if (h[m].defined()) h[m] = branch_[m]->stages[0]->rra(h[m]);
  return h;
}

torch::Tensor DRIFANetImpl::dropout(const torch::Tensor& x, const ForwardOptions& opt) const {
  const auto& rngs = opt.dropout_rngs;
  if (rngs.empty()) return torch::dropout(x, cfg_.dropout, true);
  if (static_cast<int64_t>(rngs.size()) != x.size(0))
    throw Error("dropout_rngs has " + std::to_string(rngs.size()) + " generators for a batch of " +
                std::to_string(x.size(0)));
  auto row = x.sizes().vec();
  row[0] = 1;
  std::vector<torch::Tensor> u;
  u.reserve(rngs.size());
  for (const auto& g : rngs) u.push_back(at::rand(row, g, torch::TensorOptions().dtype(torch::kFloat32)));
  const double keep = 1.0 - cfg_.dropout;
  auto mask = torch::cat(u).ge(cfg_.dropout).to(x.device(), x.scalar_type()).div_(keep);
  return x * mask;
}

namespace {

const torch::Tensor& first_present(const std::vector<torch::Tensor>& h) {
  for (const auto& x : h)
    if (x.defined()) return x;
  throw Error("every modality is absent: the model needs at least one input");
}

}  // namespace

void DRIFANetImpl::run_stage(int64_t i, std::vector<torch::Tensor>& h, bool with_block, const ForwardOptions& opt) {
  const int64_t n = cfg_.stages();
  const bool drop = dropout_active() && i < n - 2 && cfg_.dropout > 0;
  for (size_t m = 0; m < h.size(); ++m)
    if (h[m].defined() && with_block) h[m] = branch_[m]->stages[i]->rra(h[m]);
  if (drop) {
    const auto& ref = first_present(h);  // the shape an absent modality's map would have here
    for (auto& x : h) {
      if (x.defined()) x = dropout(x, opt);
      // A skipped branch still takes its draws, so a sample's masks at later sites do not
      // depend on which modalities it has.
      else if (!opt.dropout_rngs.empty()) dropout(ref, opt);
    }
  }
  for (size_t m = 0; m < h.size(); ++m) {
    if (!h[m].defined()) continue;
    auto& stage = branch_[m]->stages[i];
    if (stage->mfa) h[m] = stage->mfa(h[m]);
  }
  if (!fusion_.empty()) h = fusion_[i]->forward(h, opt.presence);
}

ForwardResult DRIFANetImpl::suffix(std::vector<torch::Tensor> h, const ForwardOptions& opt) {
  check_presence(opt.presence, first_present(h).size(0));
  ForwardResult r;
  for (int64_t i = 0; i < cfg_.stages(); ++i) {
    run_stage(i, h, /*with_block=*/i > 0, opt);
    if (opt.keep_stages) r.stages.push_back(h);
  }
  // The head sees zeros where a modality is absent.
  const auto& ref = first_present(h);
  for (size_t m = 0; m < h.size(); ++m) {
    if (!h[m].defined()) h[m] = torch::zeros_like(ref);
    else if (opt.presence.defined())
      h[m] = h[m] * opt.presence.select(1, static_cast<int64_t>(m)).to(h[m].scalar_type()).view({-1, 1, 1, 1});
  }
  auto cat = torch::cat(h, 1);
  r.features = cat.mean({2, 3});
  auto f = (dropout_active() && cfg_.dropout > 0) ? dropout(cat, opt).mean({2, 3}) : r.features;
  for (auto& head : head_) r.logits.push_back(head(f));
  return r;
}

ForwardResult DRIFANetImpl::forward(const std::vector<torch::Tensor>& inputs, const ForwardOptions& opt) {
  return suffix(prefix(inputs), opt);
}

void initialise(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& mod : module.modules(/*include_self=*/false)) {
    if (auto* conv = mod->as<torch::nn::Conv2dImpl>()) {
      torch::nn::init::xavier_uniform_(conv->weight);
      if (conv->bias.defined()) conv->bias.zero_();
    } else if (auto* lin = mod->as<torch::nn::LinearImpl>()) {
      torch::nn::init::xavier_uniform_(lin->weight);
      if (lin->bias.defined()) lin->bias.zero_();
    } else if (auto* bn = mod->as<torch::nn::BatchNorm2dImpl>()) {
      bn->weight.fill_(1);
      bn->bias.zero_();
    }
  }
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace drifa
