// One model, one pass in Eval mode: the plain prediction.
#include "drifa/inference/method.h"

namespace drifa::inference {
namespace {

class Deterministic final : public PredictiveMethod {
 public:
  std::string name() const override { return "deterministic"; }
  std::string layout() const override { return "1 x N x K: model 0's pass in Eval mode"; }
  bool available(const Counts&) const override { return true; }
  bool answers(const Counts& c) const override { return c.models == 1 && c.passes == 0 && c.views == 0; }
  bool one_model() const override { return true; }
  torch::Tensor samples(const TaskSamples& s) const override { return s.deterministic.at(0).unsqueeze(0); }
};

}  // namespace

const PredictiveMethod& deterministic_method() {
  static const Deterministic m;
  return m;
}

}  // namespace drifa::inference
