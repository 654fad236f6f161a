// Monte Carlo dropout (spec section 7): one model, T passes with dropout on.
#include "drifa/inference/method.h"

namespace drifa::inference {
namespace {

class MCDropout final : public PredictiveMethod {
 public:
  std::string name() const override { return "mc"; }
  std::string layout() const override { return "T x N x K: model 0's T Monte Carlo dropout passes"; }
  bool available(const Counts& c) const override { return c.passes > 0; }
  bool answers(const Counts& c) const override { return c.models == 1 && c.passes > 0 && c.views == 0; }
  bool one_model() const override { return true; }
  torch::Tensor samples(const TaskSamples& s) const override { return s.mc.at(0); }
};

}  // namespace

const PredictiveMethod& mc_dropout_method() {
  static const MCDropout m;
  return m;
}

}  // namespace drifa::inference
