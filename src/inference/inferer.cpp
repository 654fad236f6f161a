#include "drifa/inference/inferer.h"

#include <torch/torch.h>

#include "drifa/error.h"
#include "drifa/runtime/autocast.h"

namespace drifa::inference {

Inferer::Inferer(DRIFANet& net, InferOptions opt) : net_(net), opt_(std::move(opt)) {
  opt_.plan.check(net_->config());
  if (!opt_.temperatures.empty() && static_cast<int64_t>(opt_.temperatures.size()) != net_->config().tasks())
    throw Error("inferer: one temperature per task is needed");
}

Pass Inferer::batch(const data::Batch& b) {
  const auto& cfg = net_->config();
  std::vector<torch::Tensor> x;
  for (const auto& t : b.inputs) x.push_back(t.defined() ? t.to(opt_.device) : t);
  auto e = inputs::expand(x, inputs::kept_modalities(b.labels, opt_.plan, cfg.modalities), opt_.plan);
  // Partner row j of example i draws its masks as sample i * P + j.
  std::vector<int64_t> ids;
  for (auto i : b.indices)
    for (int64_t j = 0; j < e.per_case; ++j) ids.push_back(static_cast<int64_t>(i) * e.per_case + j);
  return rows(std::move(e.inputs), e.per_case, std::move(ids));
}

Pass Inferer::prepare(std::vector<torch::Tensor> x, int64_t per_case, std::vector<int64_t> ids) {
  Pass p;
  for (auto& t : x)
    if (t.defined()) t = t.to(opt_.device);
  p.rows = std::move(x);
  p.per_case = per_case;
  p.ids = std::move(ids);
  ModeGuard eval(net_, Mode::Eval);
  torch::NoGradGuard ng;
  AutocastGuard ac(opt_.bf16, opt_.device);
  p.prefix = net_->prefix(p.rows);
  return p;
}

Pass Inferer::rows(std::vector<torch::Tensor> x, int64_t per_case, std::vector<int64_t> ids) {
  // forward() is suffix(prefix()): keeping the prefix costs nothing and lets MC passes share it.
  Pass p = prepare(std::move(x), per_case, std::move(ids));
  ModeGuard eval(net_, Mode::Eval);
  torch::NoGradGuard ng;
  AutocastGuard ac(opt_.bf16, opt_.device);
  const auto r = net_->suffix(p.prefix);
  for (size_t t = 0; t < r.logits.size(); ++t) {
    const double temp = opt_.temperatures.empty() ? 1.0 : opt_.temperatures[t];
    p.probs.push_back(torch::softmax(r.logits[t].to(torch::kFloat32) / temp, 1).cpu());
  }
  if (opt_.features) p.features = r.features.to(torch::kFloat64).cpu();
  return p;
}

std::vector<torch::Tensor> Inferer::mc(const Pass& p, const MCOptions& opt) {
  MCOptions o = opt;
  o.bf16 = opt_.bf16;
  return o.share_prefix ? mc_sample_from_prefix(net_, p.prefix, p.ids, o) : mc_sample(net_, p.rows, p.ids, o);
}

ForwardResult Inferer::with_stages(const std::vector<torch::Tensor>& rows) {
  std::vector<torch::Tensor> x;
  for (const auto& t : rows) x.push_back(t.defined() ? t.to(opt_.device) : t);
  torch::AutoGradMode grad_on(true);
  ModeGuard eval(net_, Mode::Eval);
  ForwardOptions fo;
  fo.keep_stages = true;
  return net_->forward(x, fo);
}

std::vector<torch::Tensor> by_case(const std::vector<torch::Tensor>& probs, int64_t per_case) {
  std::vector<torch::Tensor> out;
  for (const auto& p : probs) out.push_back(inputs::by_case(p, per_case));
  return out;
}

}  // namespace drifa::inference
