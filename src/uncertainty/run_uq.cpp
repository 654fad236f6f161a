#include "drifa/uncertainty/run_uq.h"

#include <filesystem>

#include "drifa/error.h"

#include <nlohmann/json.hpp>

#include "drifa/io/atomic_file.h"
#include "drifa/io/folder_lock.h"
#include "drifa/runs/ensemble.h"
#include "drifa/runs/files.h"

namespace fs = std::filesystem;

namespace drifa::uncertainty {

nlohmann::json run_uq(const std::string& dir, const UqOptions& opt) {
  namespace rf = runs::files;
  // One writer of the study's folder at a time; a run still training may be studied.
  runs::member_runs(dir);  // first: a mistyped folder is refused, not created by the lock
  const std::string out = opt.out.empty() ? rf::path(dir, rf::kUqDir) : opt.out;
  const io::FolderLock lock(out);
  auto e = runs::open_ensemble(dir, opt.study.device);
  const auto examples = e.run.examples(opt.part);
  data::ImageCache cache(e.run.cfg.data.image_options());
  const auto& mc = e.nets[0]->config();
  StudyOptions study = opt.study;
  study.draw.tta.transforms = e.run.cfg.tta_transforms(mc);
  std::optional<inputs::PartnerBank> bank;
  if (!opt.missing.empty()) study.plan.absent = inputs::parse_absent(opt.missing, mc, "--missing");
  if (opt.partners > 0) {
    bank = e.run.partner_bank(mc);
    if (!bank) throw Error(dir + ": a paired run has no partners to average over; --missing NAME leaves a modality out");
    study.plan.bank = &*bank;
    study.plan.partners = opt.partners;
  }
  const auto s = sample_models(e.nets, examples, cache, study);
  const auto cal = opt.calibrated ? e.calibration() : std::nullopt;
  nlohmann::json warnings = nlohmann::json::array();
  if (cal && cal->passes != opt.study.mc.passes)
    warnings.push_back("the calibration was fitted with " + std::to_string(cal->passes) + " Monte Carlo passes, this study uses " +
                       std::to_string(opt.study.mc.passes) + "; the mc and ensemble temperatures and sets are approximate");
  if (cal && cal->part == opt.part)
    warnings.push_back("the calibration was fitted on the same part (" + opt.part + "); its coverage is not a held-out estimate");
  SummaryOptions so;
  so.coverages = opt.study.coverages;
  so.calibration = cal ? &*cal : nullptr;
  so.alphas = opt.alphas;
  so.seed = opt.study.mc.seed;
  so.ci = opt.ci;
  for (const auto& ex : examples) so.groups.push_back(ex.group);
  so.aggregate = e.run.cfg.aggregate;
  auto j = summarise(s, mc, so);
  j["part"] = opt.part;
  j["inputs"] = study.plan.to_json(mc);
  if (!e.run.data.paired)
    for (size_t t = 0; t < study.plan.absent.size() && t < static_cast<size_t>(mc.tasks()); ++t)
      if (study.plan.absent[t])
        warnings.push_back("task " + mc.task_name(static_cast<int64_t>(t)) + ": its own modality is absent (unpaired data), so its "
                           "numbers describe a guess from the other modalities' partners");
  if (cal && (study.plan.marginalising() || !study.plan.absent.empty()))
    warnings.push_back("the calibration was fitted with every modality given; these inputs differ, so its temperatures and sets are approximate");
  j["seed"] = opt.study.mc.seed;
  j["mc_seconds"] = s.mc_seconds;
  j["shared_prefix"] = opt.study.mc.share_prefix;
  j["warnings"] = warnings;
  write_samples_csv(rf::path(out, rf::kUqSamples), s, examples, e.nets[0]->config(), so.calibration);
  io::atomic_write_text(rf::path(out, rf::kUq), j.dump(2));
  return j;
}

}  // namespace drifa::uncertainty
