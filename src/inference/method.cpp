#include "drifa/inference/method.h"

#include "drifa/error.h"

namespace drifa::inference {

// Registration: each method's file defines its accessor.
const PredictiveMethod& deterministic_method();
const PredictiveMethod& mc_dropout_method();
const PredictiveMethod& ensemble_method();
const PredictiveMethod& ensemble_mc_method();
const PredictiveMethod& tta_method();
const PredictiveMethod& tta_mc_method();

const std::vector<const PredictiveMethod*>& methods() {
  static const std::vector<const PredictiveMethod*> all = {&deterministic_method(), &mc_dropout_method(), &ensemble_method(),
                                                           &ensemble_mc_method(), &tta_method(),
                                                           &tta_mc_method()};
  return all;
}

const PredictiveMethod* find_method(const std::string& name) {
  for (const auto* m : methods())
    if (m->name() == name) return m;
  return nullptr;
}

const PredictiveMethod& method_for(const Counts& c) {
  for (const auto* m : methods())
    if (m->answers(c)) return *m;
  throw Error("no predictive method answers for " + std::to_string(c.models) + " model(s), " + std::to_string(c.passes) +
              " Monte Carlo passes and " + std::to_string(c.views) + " augmented views");
}

}  // namespace drifa::inference
