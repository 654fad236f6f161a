#!/usr/bin/env bash
# The main job: install what is missing, build, then the demo on the embedded synthetic data:
# generate it, train DRIFA-Net on CPU, evaluate every task on its test set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
./build/drifa info --preset paper | tail -n 4
./build/drifa synth -o runs/demo-data
rm -rf runs/demo
./build/drifa train --config runs/demo-data/demo.toml --out runs/demo --no-test
./build/drifa evaluate runs/demo
echo "run folder: runs/demo (config.json, split.json, log.csv, best.safetensors, metrics.json, predictions.csv)"
