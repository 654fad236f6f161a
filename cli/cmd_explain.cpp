// drifa gradcam | drifa tsne | drifa report
#include <filesystem>
#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "drifa/explain/run_explain.h"
#include "drifa/report/report.h"
#include "drifa/runtime/threads.h"
#include "drifa/training/ensemble.h"
#include "drifa/runs/files.h"

namespace fs = std::filesystem;

namespace drifa::cli {

void register_gradcam(CLI::App& app, GlobalFlags& g) {
  struct Opts {
    std::string dir, out;
    explain::GalleryOptions go;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("gradcam", "Grad-CAM heat maps over a run's test split (overlays, raw maps, lesion scores)");
  cmd->add_option("dir", o->dir, "training run or ensemble folder (member 0's model is explained)")->required();
  cmd->add_option("--part", o->go.part, "test | val");
  cmd->add_option("-n,--count", o->go.count, "overlays to write")->check(bounded(settings::limits::kCount));
  cmd->add_option("--select", o->go.select, "auto (most uncertain after `drifa uq`, else first) | first | uncertain");
  cmd->add_option("--modality", o->go.modality, "modality index (default: each task's own)");
  cmd->add_option("--stage", o->go.stage, "stage index (default: the last)");
  cmd->add_option("--class", o->go.target_class, "class index to explain (default: the predicted)");
  cmd->add_option("--out", o->out, "output folder (default DIR/gradcam)");
  cmd->callback([o, &g] {
    apply_global_flags(g);
    auto go = o->go;
    go.device = pick_device(g.device);
    auto e = runs::open_ensemble(o->dir, go.device);
    namespace rf = runs::files;
    go.uq_samples_csv = rf::path(o->dir, rf::kUqDir, rf::kUqSamples);
    data::ImageCache cache(e.run.cfg.data.image_options());
    const std::string out = o->out.empty() ? rf::path(o->dir, rf::kGradcamDir) : o->out;
    const auto j = explain::gradcam_run(e.nets[0], e.run, cache, go, out);
    if (g.quiet) return;
    std::cout << "wrote " << j["images"].size() << " Grad-CAM overlays (stage " << j["stage"] << ") to " << out << "\n";
    if (j.contains("lesion"))
      std::cout << std::fixed << std::setprecision(3) << "lesion masks found for " << j["lesion"]["maps"]
                << " maps: energy inside the lesion " << j["lesion"]["energy_inside_mean"].get<double>()
                << " (uniform map " << j["lesion"]["uniform_mean"].get<double>() << "), pointing game "
                << j["lesion"]["pointing_hit_rate"].get<double>() << " (uniform "
                << j["lesion"]["pointing_uniform_expectation"].get<double>() << ")\n";
  });
}

void register_tsne(CLI::App& app, GlobalFlags& g) {
  struct Opts {
    std::string dir, out;
    explain::EmbedOptions eo;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("tsne", "t-SNE of the fused features of a run's test split (CSV, PNG, trustworthiness)");
  cmd->add_option("dir", o->dir, "training run or ensemble folder (member 0's model)")->required();
  cmd->add_option("--part", o->eo.part, "test | val");
  cmd->add_option("--perplexity", o->eo.tsne.perplexity)->check(bounded(settings::limits::kPerplexity));
  cmd->add_option("--iterations", o->eo.tsne.iterations)->check(bounded(settings::limits::kTsneIterations));
  cmd->add_option("--seed", o->eo.tsne.seed, "with --random-init");
  cmd->add_flag("--per-modality", o->eo.per_modality, "also embed each modality's own features");
  cmd->add_flag("!--random-init", o->eo.tsne.pca_init, "random initialisation instead of PCA");
  cmd->add_option("--out", o->out, "output folder (default DIR/tsne)");
  cmd->callback([o, &g] {
    apply_global_flags(g);
    auto eo = o->eo;
    eo.device = pick_device(g.device);
    auto e = runs::open_ensemble(o->dir, eo.device);
    data::ImageCache cache(e.run.cfg.data.image_options());
    const std::string out = o->out.empty() ? runs::files::path(o->dir, runs::files::kTsneDir) : o->out;
    const auto j = explain::tsne_run(e.nets[0], e.run, cache, eo, out);
    if (g.quiet) return;
    for (auto it = j["embeddings"].begin(); it != j["embeddings"].end(); ++it)
      std::cout << "t-SNE " << it.key() << ": " << it.value()["samples"] << " samples, perplexity "
                << it.value()["perplexity"] << ", KL " << std::fixed << std::setprecision(3)
                << it.value()["kl_divergence"].get<double>() << ", trustworthiness "
                << it.value()["trustworthiness"].get<double>() << " -> " << out << "/" << it.value()["png"].get<std::string>()
                << "\n";
  });
}

void register_report(CLI::App& app, GlobalFlags& g) {
  auto dir = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("report", "one self-contained HTML report of a run or ensemble folder");
  cmd->add_option("dir", *dir, "training run, ensemble or cross-validation folder")->required();
  cmd->add_option("-o,--out", *out, "HTML file (default DIR/report.html)");
  cmd->callback([dir, out, &g] {
    apply_global_flags(g);
    const std::string path = out->empty() ? runs::files::path(*dir, runs::files::kReport) : *out;
    const auto missing = report::write_report(*dir, path);
    if (g.quiet) return;
    std::cout << "wrote " << path << "\n";
    for (const auto& m : missing) std::cout << "  not in the report: " << m << "\n";
  });
}

}  // namespace drifa::cli
