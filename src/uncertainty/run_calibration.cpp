#include "drifa/uncertainty/run_calibration.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "drifa/inference/method.h"
#include "drifa/io/atomic_file.h"
#include "drifa/io/folder_lock.h"
#include "drifa/runs/model_file.h"
#include "drifa/io/settings.h"
#include "drifa/runs/ensemble.h"
#include "drifa/runs/files.h"

namespace drifa::uncertainty {

calibration::Calibration calibrate_run(const std::string& dir, const CalibrateOptions& opt) {
  namespace rf = runs::files;
  runs::member_runs(dir);  // first: a mistyped folder is refused, not created by the lock
  const io::FolderLock lock(dir);
  auto e = runs::open_ensemble(dir, opt.study.device);
  const auto examples = e.run.examples(opt.part);
  data::ImageCache cache(e.run.cfg.data.image_options());
  const auto& cfg = e.nets[0]->config();
  auto study = opt.study;
  study.draw.tta.transforms = e.run.cfg.tta_transforms(cfg);
  const auto s = sample_models(e.nets, examples, cache, study);
  calibration::Calibration c;
  c.part = opt.part;
  c.models = static_cast<int64_t>(e.nets.size());
  c.passes = opt.study.mc.passes;
  c.seed = opt.study.mc.seed;
  c.alpha = opt.alpha;
  c.score = opt.score;
  c.weights = e.weights;
  std::vector<int64_t> ids(examples.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(i);
  std::vector<std::string> groups;
  for (const auto& ex : examples) groups.push_back(ex.group);
  for (size_t t = 0; t < s.labels.size(); ++t)
    for (const auto& [method, samples] : method_samples(s, t))
      c.tasks[cfg.task_name(static_cast<int64_t>(t))][method] = calibration::fit_method(s.labels[t], samples, ids, c.seed, groups);
  io::atomic_write_text(rf::path(dir, rf::kCalibration), c.to_json().dump(1));
  if (e.nets.size() == 1) {
    // The model file carries the fits that apply to it alone.
    calibration::Calibration own = c;
    for (auto& [task, by_method] : own.tasks)
      for (auto it = by_method.begin(); it != by_method.end();)
        it = inference::find_method(it->first)->one_model() ? std::next(it) : by_method.erase(it);
    const auto best = e.run.best_model();
    auto loaded = runs::load_model(best);
    auto meta = loaded.metadata;
    meta.erase(runs::files::kConfigKey);
    meta[runs::files::kCalibrationKey] = own.to_json().dump();
    runs::save_model(loaded.net, best, meta);
  }
  return c;
}

}  // namespace drifa::uncertainty
