// A deep ensemble without dropout: K models, one pass each.
#include "drifa/inference/method.h"

#include <torch/torch.h>

namespace drifa::inference {
namespace {

class Ensemble final : public PredictiveMethod {
 public:
  std::string name() const override { return "ensemble_deterministic"; }
  std::string layout() const override { return "K x N x K_t: each model's pass in Eval mode"; }
  bool available(const Counts& c) const override { return c.models > 1; }
  bool answers(const Counts& c) const override { return c.models > 1 && c.passes == 0 && c.views == 0; }
  torch::Tensor samples(const TaskSamples& s) const override { return torch::stack(s.deterministic); }
};

}  // namespace

const PredictiveMethod& ensemble_method() {
  static const Ensemble m;
  return m;
}

}  // namespace drifa::inference
