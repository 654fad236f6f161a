// The authors' ensemble Monte Carlo study (spec section 7): K models x T dropout passes.
#include "drifa/inference/method.h"

#include <torch/torch.h>

namespace drifa::inference {
namespace {

class EnsembleMC final : public PredictiveMethod {
 public:
  std::string name() const override { return "ensemble"; }
  std::string layout() const override { return "(K x T) x N x K_t: every model's T Monte Carlo dropout passes"; }
  bool available(const Counts& c) const override { return c.models > 1 && c.passes > 0; }
  bool answers(const Counts& c) const override { return c.models > 1 && c.passes > 0 && c.views == 0; }
  torch::Tensor samples(const TaskSamples& s) const override { return torch::cat(s.mc, 0); }
};

}  // namespace

const PredictiveMethod& ensemble_mc_method() {
  static const EnsembleMC m;
  return m;
}

}  // namespace drifa::inference
