#pragma once
// libdrifa: the table of contents.
//
// model/       the network of the spec: HIFA + CLIA = MFA, MIFA (MGIFA + MLIFA), RRA, branches, DRIFANet;
//              the fused pooling kernels the attention blocks end in (spatial_stats)
// data/        decoding (images, DICOM), volumes (NIfTI, DICOM series) and their slices, data sources
//              (folders, CSV, paired) and their groups
//              (patients, lesions), grouped splits and pairing, the leakage and data checks,
//              transforms and augmentation, the cached parallel loader, synthetic demo data
// training/    run configuration, checkpoints, the resumable trainer
// evaluation/  metrics, the (cluster) bootstrap, group-level aggregation and the evaluator
//              (metrics.json, predictions.csv)
// io/          safetensors, model files with their config, TOML configs, atomic writes
// runtime/     threads, device, autocast, memory (allocator), layout, progress bars
// serve/       drifa serve: the dynamic batcher, the service (uploads in, predict's JSON out),
//              the HTTP server and its web page, Prometheus metrics
#include "drifa/data/check.h"
#include "drifa/data/csv.h"
#include "drifa/data/dataset.h"
#include "drifa/data/dicom.h"
#include "drifa/data/image.h"
#include "drifa/data/isolated.h"
#include "drifa/data/loader.h"
#include "drifa/data/sources.h"
#include "drifa/data/split.h"
#include "drifa/data/synth.h"
#include "drifa/data/transforms.h"
#include "drifa/data/volume.h"
#include "drifa/data/volume_slices.h"
#include "drifa/error.h"
#include "drifa/evaluation/aggregate.h"
#include "drifa/evaluation/evaluator.h"
#include "drifa/evaluation/metrics.h"
#include "drifa/io/atomic_file.h"
#include "drifa/io/config_file.h"
#include "drifa/runs/model_file.h"
#include "drifa/io/safetensors.h"
#include "drifa/model/branch.h"
#include "drifa/model/clia.h"
#include "drifa/model/config.h"
#include "drifa/model/drifa_net.h"
#include "drifa/model/hifa.h"
#include "drifa/model/mfa.h"
#include "drifa/model/mifa.h"
#include "drifa/model/rra.h"
#include "drifa/model/spatial_stats.h"
#include "drifa/model/summary.h"
#include "drifa/runtime/autocast.h"
#include "drifa/runtime/layout.h"
#include "drifa/runtime/memory.h"
#include "drifa/runtime/progress.h"
#include "drifa/runtime/threads.h"
#include "drifa/serve/http_server.h"
#include "drifa/training/checkpoint.h"
#include "drifa/runs/run_config.h"
#include "drifa/training/trainer.h"
