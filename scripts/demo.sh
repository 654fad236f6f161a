#!/usr/bin/env bash
# The main job: install what is missing, build, then the demo on the embedded synthetic data:
# generate it, train DRIFA-Net on CPU, evaluate every task on its test set, then the second
# phase: Monte Carlo uncertainty, Grad-CAM (scored against the known lesion masks), t-SNE of
# the fused features, and one HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
./build/drifa info --preset paper | tail -n 4
./build/drifa synth -o runs/demo-data
rm -rf runs/demo
./build/drifa train --config runs/demo-data/demo.toml --out runs/demo --no-test
./build/drifa evaluate runs/demo
./build/drifa uq runs/demo --passes 30
# At 64 px the last stage is 2x2; stage 3 (8x8) gives maps fine enough to compare with the lesions.
./build/drifa gradcam runs/demo --stage 3
./build/drifa tsne runs/demo
./build/drifa report runs/demo
echo "run folder: runs/demo (config.json, split.json, log.csv, best.safetensors, metrics.json, predictions.csv,"
echo "            uq/, gradcam/, tsne/, report.html)"
