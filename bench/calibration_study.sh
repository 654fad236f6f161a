#!/usr/bin/env bash
# The numbers of issue 12's closing note, from one run on this machine (not a test):
#   demo (synthetic, unpaired) and Fashion-MNIST as two modalities: a 3-model ensemble,
#   calibrated on the validation split, the uncertainty study on the test split (ECE/NLL before
#   and after per method, conformal coverage and set size at alpha 0.1 and 0.05, accuracy with
#   its interval), and 5-fold cross-validation; a skewed demo (one class 10x rarer) trained
#   plainly, with class weights and with balanced sampling.
# usage: bench/calibration_study.sh OUT [DRIFA_BINARY]
set -euo pipefail
OUT=${1:?usage: calibration_study.sh OUT [drifa]}
D=${2:-$(dirname "$0")/../build/drifa}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
grep -m1 'model name' /proc/cpuinfo | tee "$OUT/machine.txt"
grep -o -w 'avx2\|avx512f\|avx512_bf16\|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ' | tee -a "$OUT/machine.txt"; echo

study() {  # study NAME CONFIG
  local name=$1 cfg=$2
  "$D" ensemble -q -c "$cfg" -o "$OUT/$name/ens" -k 3
  "$D" calibrate "$OUT/$name/ens" -T 20 | tee "$OUT/$name/calibrate.txt"
  "$D" uq "$OUT/$name/ens" -T 20 --alpha 0.1,0.05 | tee "$OUT/$name/uq.txt"
  "$D" cv -q -c "$cfg" -o "$OUT/$name/cv" -k 5
  "$D" cv -c "$cfg" -o "$OUT/$name/cv" -k 5 | tee "$OUT/$name/cv.txt"
}

# 1. the demo
"$D" synth -q -o "$OUT/demo/data"
study demo "$OUT/demo/data/demo.toml"

# 2. Fashion-MNIST (Debian's dataset-fashion-mnist) as two modalities
/usr/bin/python3 "$HERE/fashion_mnist_folders.py" "$OUT/fmnist/data" 120 60 > /dev/null
study fmnist "$OUT/fmnist/data/run.toml"

# 3. a skewed demo: the first class of each modality keeps one training image in ten
"$D" synth -q -o "$OUT/skew/data"
for m in derm mri; do
  first=$(ls "$OUT/skew/data/$m/train" | head -1)
  ls "$OUT/skew/data/$m/train/$first"/* | awk 'NR % 10 != 1' | xargs rm
done
for variant in plain weights sampling; do
  cfg="$OUT/skew/$variant.toml"
  sed "s|= \"derm/|= \"$OUT/skew/data/derm/|; s|= \"mri/|= \"$OUT/skew/data/mri/|" "$OUT/skew/data/demo.toml" > "$cfg"
  case $variant in
    weights) sed -i 's/^\[train\]$/[train]\nclass_weights = "balanced"/' "$cfg" ;;
    sampling) sed -i 's/^\[train\]$/[train]\nsampling = "balanced"/' "$cfg" ;;
  esac
  "$D" train -q -c "$cfg" -o "$OUT/skew/$variant"
  "$D" evaluate "$OUT/skew/$variant" | tee "$OUT/skew/$variant.txt"
done
