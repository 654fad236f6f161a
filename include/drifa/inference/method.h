#pragma once
// Predictive methods as objects. A method turns what was drawn from the models (each model's
// deterministic pass, its Monte Carlo passes, draws of its own) into the samples [S, N, K] whose
// mean is its prediction. Calibration fits one temperature per method (its name is the key), and
// the uq tables, conformal sets, the report, predict and serve iterate over the registry instead
// of spelling names. A new method is one file (src/inference/methods/) and one line in the
// registry (src/inference/method.cpp).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "drifa/inference/inferer.h"

namespace drifa::inference {

// What the samples of one task were drawn from.
struct TaskSamples {
  std::vector<torch::Tensor> deterministic;               // [model] [N, K]
  std::vector<torch::Tensor> mc;                          // [model] [T, N, K] (none without passes)
  std::map<std::string, std::vector<torch::Tensor>> own;  // method name -> [model] [S, N, K]
};

// How much was drawn: models, Monte Carlo passes per model, test-time augmentation views.
struct Counts {
  int64_t models = 1, passes = 0, views = 0;
  bool views_mc = false;  // each view also gets the Monte Carlo passes
};

// Test-time augmentation (methods/tta.cpp): T views, each modality transformed only as its
// setting allows (flips and 90-degree rotations; settings::tta_transforms).
struct TTAOptions {
  int64_t views = 0;                    // 0: off
  std::vector<std::string> transforms;  // per modality: none | hflip | flips | dihedral (empty: hflip each)
  bool mc = false;                      // also views x Monte Carlo passes (method tta_mc)
};

// What a method's own draws may use.
struct DrawOptions {
  TTAOptions tta;
  MCOptions mc;  // the passes (and this model's seed) of views x passes
};

class PredictiveMethod {
 public:
  virtual ~PredictiveMethod() = default;
  virtual std::string name() const = 0;    // its key in calibration.json, uq.json and predict's "method"
  virtual std::string layout() const = 0;  // its samples, in words
  // Computed by the uncertainty study and calibration for these counts.
  virtual bool available(const Counts& c) const = 0;
  // The method predict and serve answer with for these counts (exactly one method says yes).
  virtual bool answers(const Counts& c) const = 0;
  // Its fit applies to one model alone, so it travels in a lone model file.
  virtual bool one_model() const { return false; }
  // Samples [S, N, K] of one task.
  virtual torch::Tensor samples(const TaskSamples& s) const = 0;
  // Draws of its own for one batch of one model (default none): per task [S, R, K].
  virtual bool draws(const DrawOptions&) const { return false; }
  virtual std::vector<torch::Tensor> draw(Inferer&, const Pass&, const DrawOptions&) const { return {}; }
};

// The registry, in report order.
const std::vector<const PredictiveMethod*>& methods();
const PredictiveMethod* find_method(const std::string& name);
// The method predict and serve answer with (throws when none does).
const PredictiveMethod& method_for(const Counts& c);

}  // namespace drifa::inference
