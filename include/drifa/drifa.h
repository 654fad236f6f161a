#pragma once
// libdrifa: the table of contents, folder by folder from the bottom layer up (each folder
// includes only folders above it in this list; scripts/include_graph.py checks it).
//
// io/          safetensors, TOML configs, atomic writes, folder locks, the settings validator
// optim/       FusedAdam
// data/        decoding (images, DICOM), volumes (NIfTI, DICOM series) and their slices, data sources (folders,
//              CSV, paired) and their groups (patients, lesions), grouped splits and pairing, the leakage
//              and data checks, transforms and augmentation, the cached parallel loader, synthetic data
// runtime/     threads, device, autocast, precision, memory (allocator), layout, tuning cache, c10d, progress bars
// visual/      gnuplot plots (explain and report)
// model/       the network of the spec: HIFA + CLIA = MFA, MIFA (MGIFA + MLIFA), RRA, branches, DRIFANet;
//              ModelConfig and its presets; the fused pooling and attention kernels
// inputs/      what the network is given: missing modalities, modality dropout, the partner bank
// inference/   the one Inferer, the Monte Carlo sampler, the predictive methods as objects
// evaluation/  metrics, scores (NLL, Brier, reliability), the (cluster) bootstrap, group-level
//              aggregation and the evaluator
// calibration/ temperature scaling, conformal prediction sets, the stored calibration
// runs/        the run folder: one table of names (keys.h), a checked reader per file, run configuration,
//              RunFolder, ensembles, model files
// training/    checkpoints, the resumable trainer and its schedule, speed settings timed (tuning), ensembles, cross-validation
// explain/     Grad-CAM, lesion scores, exact t-SNE and their run-level drivers
// report/      the self-contained HTML report
// uncertainty/ uncertainty measures, the ensemble study, drifa uq, drifa calibrate, drifa predict
// serve/       drifa serve: the dynamic batcher, the service, the HTTP server and its page, metrics
#include "drifa/error.h"
#include "drifa/io/atomic_file.h"
#include "drifa/io/base64.h"
#include "drifa/io/config_file.h"
#include "drifa/io/folder_lock.h"
#include "drifa/io/safetensors.h"
#include "drifa/io/settings.h"
#include "drifa/optim/fused_adam.h"
#include "drifa/data/check.h"
#include "drifa/data/csv.h"
#include "drifa/data/dataset.h"
#include "drifa/data/dicom.h"
#include "drifa/data/dicom_structure.h"
#include "drifa/data/image.h"
#include "drifa/data/image_header.h"
#include "drifa/data/image_integrity.h"
#include "drifa/data/isolated.h"
#include "drifa/data/loader.h"
#include "drifa/data/sources.h"
#include "drifa/data/split.h"
#include "drifa/data/synth.h"
#include "drifa/data/transforms.h"
#include "drifa/data/volume.h"
#include "drifa/data/volume_slices.h"
#include "drifa/runtime/autocast.h"
#include "drifa/runtime/distributed.h"
#include "drifa/runtime/layout.h"
#include "drifa/runtime/memory.h"
#include "drifa/runtime/precision.h"
#include "drifa/runtime/progress.h"
#include "drifa/runtime/threads.h"
#include "drifa/runtime/tuning_cache.h"
#include "drifa/visual/plots.h"
#include "drifa/model/attention_kernels.h"
#include "drifa/model/branch.h"
#include "drifa/model/clia.h"
#include "drifa/model/config.h"
#include "drifa/model/drifa_net.h"
#include "drifa/model/hifa.h"
#include "drifa/model/mfa.h"
#include "drifa/model/mifa.h"
#include "drifa/model/pointwise_layout.h"
#include "drifa/model/mfa_chain.h"
#include "drifa/model/recompute.h"
#include "drifa/model/rra.h"
#include "drifa/model/spatial_stats.h"
#include "drifa/model/summary.h"
#include "drifa/inputs/partners.h"
#include "drifa/inputs/presence.h"
#include "drifa/inference/inferer.h"
#include "drifa/inference/mc_sampler.h"
#include "drifa/inference/method.h"
#include "drifa/evaluation/aggregate.h"
#include "drifa/evaluation/bootstrap.h"
#include "drifa/evaluation/evaluator.h"
#include "drifa/evaluation/metrics.h"
#include "drifa/evaluation/scores.h"
#include "drifa/calibration/calibration.h"
#include "drifa/calibration/conformal.h"
#include "drifa/calibration/temperature.h"
#include "drifa/runs/ensemble.h"
#include "drifa/runs/files.h"
#include "drifa/runs/keys.h"
#include "drifa/runs/model_file.h"
#include "drifa/runs/run_config.h"
#include "drifa/runs/run_folder.h"
#include "drifa/runs/tables.h"
#include "drifa/training/checkpoint.h"
#include "drifa/training/cross_validation.h"
#include "drifa/training/ensemble.h"
#include "drifa/training/policy.h"
#include "drifa/training/trainer.h"
#include "drifa/training/tuning.h"
#include "drifa/explain/gradcam.h"
#include "drifa/explain/run_explain.h"
#include "drifa/explain/tsne.h"
#include "drifa/report/report.h"
#include "drifa/uncertainty/measures.h"
#include "drifa/uncertainty/predict.h"
#include "drifa/uncertainty/run_calibration.h"
#include "drifa/uncertainty/run_uq.h"
#include "drifa/uncertainty/study.h"
#include "drifa/serve/batcher.h"
#include "drifa/serve/http_server.h"
#include "drifa/serve/metrics.h"
#include "drifa/serve/page.h"
#include "drifa/serve/service.h"
