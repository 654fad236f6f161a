#!/usr/bin/env bash
# The numbers of issue 13's closing note: predicting from the modalities a case has.
#   1. the unpaired demo: each task scored with its own image and K = 1..32 bank partners;
#   2. the paired demo cases (drifa synth's paired.toml) with and without modality dropout;
#   3. two views of Fashion-MNIST items (top and bottom half, Debian's dataset-fashion-mnist)
#      with and without modality dropout; every pattern of missing views.
# usage: bench/missing_study.sh OUT   (about 40 minutes on 2 cores)
set -euo pipefail
OUT=${1:?usage: missing_study.sh OUT}
D=$(cd "$(dirname "$0")/.." && pwd)/build/drifa
B=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT" && cd "$OUT"
grep -o -m1 -w -E 'avx512_bf16|avx512f|avx2' /proc/cpuinfo | sort -u | tr '\n' ' '; echo "(ISA flags), $(nproc) cores"

$D synth -q -o demo-data
$D train -q --no-test -c demo-data/demo.toml -o demo
$D evaluate demo --partners 8 --resamples 1000
for k in 2 4 16 32; do $D evaluate demo --partners $k --resamples 0 --out demo/k$k | grep -A6 "with partners"; done

$D synth -q -o paired-data --size 32 --train-per-class 100 --test-per-class 30
for q in 0 0.3; do
  sed -e "s/modality_dropout = 0.3/modality_dropout = $q/" -e "s/epochs = 12/epochs = 20/" \
      -e "s/plateau_patience = 3/plateau_patience = 6/" -e "s/early_stop_patience = 5/early_stop_patience = 20/" \
      paired-data/paired.toml > paired-data/q$q.toml
  $D train -q --no-test -c paired-data/q$q.toml -o paired-q$q
  $D evaluate paired-q$q --missing all --resamples 1000 | grep -A5 "with modalities absent"
done

/usr/bin/python3 "$B/fashion_mnist_folders.py" fm-unpaired 60 30 > /dev/null  # tops | other, unpaired
$D train -q --no-test -c fm-unpaired/run.toml -o fm-unpaired/run
$D evaluate fm-unpaired/run --partners 8 --resamples 1000

for q in 0 0.3; do
  /usr/bin/python3 "$B/fashion_mnist_paired.py" fm-q$q 60 30 $q
  $D train -q --no-test -c fm-q$q/run.toml -o fm-q$q/run
  $D evaluate fm-q$q/run --missing all --resamples 1000 | grep -A5 "with modalities absent"
done
