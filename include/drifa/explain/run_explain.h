#pragma once
// Grad-CAM and t-SNE over a run's saved test (or validation) split: what `drifa gradcam` and
// `drifa tsne` write, and what the report shows.
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "drifa/data/loader.h"
#include "drifa/explain/gradcam.h"
#include "drifa/explain/tsne.h"
#include "drifa/runs/run_folder.h"

namespace drifa::explain {

struct GalleryOptions {
  std::string part = "test";
  int count = 8;                 // overlays written
  std::string select = "auto";   // auto: most uncertain per uq_samples_csv when given, else first | first | uncertain
  std::string uq_samples_csv;    // samples.csv of `drifa uq` (ranks rows by predictive entropy)
  int64_t modality = -1;         // -1: the task's own modality (unpaired), modality 0 (paired)
  int64_t stage = -1;            // -1: last
  int64_t target_class = -1;     // -1: predicted
  int batch_size = 16;
  torch::Device device = torch::kCPU;
};

// Maps every scored (sample, task) row of the part. Where a lesion mask lies beside an image
// (data::synthetic_mask_path), scores the map against it (energy inside vs a uniform map, pointing
// game). Writes out_dir/<n>_<task>_<modality>.png (overlay on the original image),
// <...>_cam.tiff (the raw map at stage resolution, float32) and gradcam.json; returns that JSON.
nlohmann::json gradcam_run(DRIFANet& net, const runs::RunFolder& run, data::ImageCache& cache,
                           const GalleryOptions& opt, const std::string& out_dir);

struct EmbedOptions {
  std::string part = "test";
  TSNEOptions tsne;
  bool per_modality = false;  // also embed each modality's own slice of the fused features
  int batch_size = 32;
  int neighbours = 5;  // trustworthiness
  torch::Device device = torch::kCPU;
};

// Fused features (Eval mode) of each task's scored samples, embedded with t-SNE. Writes
// out_dir/<task>[_<modality>].csv (x, y, label, path) and .png, and tsne.json; returns that JSON.
nlohmann::json tsne_run(DRIFANet& net, const runs::RunFolder& run, data::ImageCache& cache, const EmbedOptions& opt,
                        const std::string& out_dir);

}  // namespace drifa::explain
