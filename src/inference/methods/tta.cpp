// Test-time augmentation: each model sees V views of every case, each modality transformed only
// as its setting allows (a flip can turn a left-sided finding into a right-sided one, so an
// anatomical modality may allow none), and the views' probabilities are the samples.
#include "drifa/inference/method.h"

#include <torch/torch.h>

#include "drifa/data/split.h"
#include "drifa/error.h"

namespace drifa::inference {
namespace {

// The dihedral group of the square, ordered so that every allowed set is a prefix: none = {id},
// hflip = {id, h}, flips = {id, h, v, rot180}, dihedral = all eight.
torch::Tensor view(const torch::Tensor& x, int64_t element) {
  switch (element) {
    case 0: return x;
    case 1: return x.flip({3});
    case 2: return x.flip({2});
    case 3: return x.flip({2, 3});
    case 4: return x.rot90(1, {2, 3});
    case 5: return x.rot90(3, {2, 3});
    case 6: return x.transpose(2, 3);
    default: return x.transpose(2, 3).flip({2, 3});
  }
}

int64_t group_size(const std::string& transforms) {
  if (transforms == "none") return 1;
  if (transforms == "hflip") return 2;
  if (transforms == "flips") return 4;
  if (transforms == "dihedral") return 8;
  throw Error("test-time augmentation: transforms: found \"" + transforms + "\", allowed none | hflip | flips | dihedral");
}

// Per task [V, R, K] (passes == 0) or [V x passes, R, K]: the views of one batch's rows.
std::vector<torch::Tensor> draw_views(Inferer& inferer, const Pass& pass, const DrawOptions& o, bool mc) {
  const auto M = pass.rows.size();
  std::vector<int64_t> sizes(M, 2);
  for (size_t m = 0; m < M && m < o.tta.transforms.size(); ++m) sizes[m] = group_size(o.tta.transforms[m]);
  std::vector<std::vector<torch::Tensor>> views(static_cast<size_t>(inferer.config().tasks()));
  for (int64_t v = 0; v < o.tta.views; ++v) {
    std::vector<torch::Tensor> rows(M);
    for (size_t m = 0; m < M; ++m)
      if (pass.rows[m].defined()) rows[m] = view(pass.rows[m], v % sizes[m]).contiguous();
    if (mc) {
      // each view's masks from their own stream, so views and passes are independent draws
      MCOptions mo = o.mc;
      mo.seed = data::mix_seed(o.mc.seed, 0x77A, static_cast<uint64_t>(v));
      const auto p = inferer.mc(v == 0 ? pass : inferer.prepare(std::move(rows), pass.per_case, pass.ids), mo);
      for (size_t t = 0; t < views.size(); ++t) views[t].push_back(p[t]);
    } else {
      const auto p = v == 0 ? pass : inferer.rows(std::move(rows), pass.per_case, pass.ids);
      for (size_t t = 0; t < views.size(); ++t) views[t].push_back(p.probs[t].unsqueeze(0));
    }
  }
  std::vector<torch::Tensor> out;
  for (auto& v : views) out.push_back(torch::cat(v, 0));
  return out;
}

class TTA final : public PredictiveMethod {
 public:
  std::string name() const override { return "tta"; }
  std::string layout() const override { return "(K x V) x N x K_t: every model's V augmented views in Eval mode"; }
  bool available(const Counts& c) const override { return c.views > 0; }
  bool answers(const Counts& c) const override { return c.views > 0 && !c.views_mc; }
  bool one_model() const override { return true; }
  torch::Tensor samples(const TaskSamples& s) const override { return torch::cat(s.own.at(name()), 0); }
  bool draws(const DrawOptions& o) const override { return o.tta.views > 0; }
  std::vector<torch::Tensor> draw(Inferer& inferer, const Pass& pass, const DrawOptions& o) const override {
    return draw_views(inferer, pass, o, false);
  }
};

class TTAMC final : public PredictiveMethod {
 public:
  std::string name() const override { return "tta_mc"; }
  std::string layout() const override { return "(K x V x T) x N x K_t: every model's V augmented views, T Monte Carlo passes each"; }
  bool available(const Counts& c) const override { return c.views > 0 && c.views_mc && c.passes > 0; }
  bool answers(const Counts& c) const override { return c.views > 0 && c.views_mc && c.passes > 0; }
  bool one_model() const override { return true; }
  torch::Tensor samples(const TaskSamples& s) const override { return torch::cat(s.own.at(name()), 0); }
  bool draws(const DrawOptions& o) const override { return o.tta.views > 0 && o.tta.mc && o.mc.passes > 0; }
  std::vector<torch::Tensor> draw(Inferer& inferer, const Pass& pass, const DrawOptions& o) const override {
    return draw_views(inferer, pass, o, true);
  }
};

}  // namespace

const PredictiveMethod& tta_method() {
  static const TTA m;
  return m;
}

const PredictiveMethod& tta_mc_method() {
  static const TTAMC m;
  return m;
}

}  // namespace drifa::inference
