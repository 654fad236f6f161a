#!/usr/bin/env bash
# Issue 14's accuracy guard for bf16 training (not a test; one run on this machine): the same
# runs trained in fp32 and in bf16, on the demo (synthetic derm + mri) and on Fashion-MNIST as
# two modalities (Debian's dataset-fashion-mnist), several seeds each; prints test accuracy per
# task, seed and precision, the mean over seeds, and whether bf16's mean is within 1 point of
# fp32's. One demo test case is 1.7 points, so single seeds differ by whole cases; the guard
# compares means over seeds.
# usage: bench/precision_guard.sh OUT [DEMO_SEEDS] [FMNIST_SEEDS] [DRIFA_BINARY]
set -euo pipefail
OUT=${1:?usage: precision_guard.sh OUT [demo seeds, default 3] [fmnist seeds, default 2] [drifa]}
DEMO_SEEDS=${2:-3}
FM_SEEDS=${3:-2}
D=${4:-$(dirname "$0")/../build/drifa}
HERE=$(cd "$(dirname "$0")" && pwd)
for n in "$DEMO_SEEDS" "$FM_SEEDS"; do
  [[ $n =~ ^[1-9][0-9]?$ ]] || { echo "precision_guard.sh: seeds: found '$n', allowed a whole number from 1 to 99" >&2; exit 2; }
done
[[ -x $D ]] || { echo "precision_guard.sh: $D: no drifa binary there (build first: scripts/build.sh)" >&2; exit 2; }
mkdir -p "$OUT"
{
  grep -m1 'model name' /proc/cpuinfo
  echo "ISA flags: $(grep -o -w 'avx2\|avx512f\|avx512_bf16\|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')$(nproc) cores"
  "$D" info | grep -E "^processor|^precision"
} | tee "$OUT/machine.txt"

"$D" synth -q -o "$OUT/demo-data"
/usr/bin/python3 "$HERE/fashion_mnist_folders.py" "$OUT/fmnist-data" 300 100 > /dev/null

run() {  # run NAME CONFIG SEED PRECISION
  local dir="$OUT/runs/$1-s$3-$4"
  if [[ ! -f "$dir/metrics.json" ]]; then
    rm -rf "$dir"
    local t0=$SECONDS
    "$D" train -q -c "$2" -o "$dir" --seed "$3" --precision "$4"
    echo "$1 seed $3 $4: $((SECONDS - t0)) s" | tee -a "$OUT/times.txt"
  fi
}
for s in $(seq 0 $((DEMO_SEEDS - 1))); do
  for p in fp32 bf16; do run demo "$OUT/demo-data/demo.toml" "$s" "$p"; done
done
for s in $(seq 0 $((FM_SEEDS - 1))); do
  for p in fp32 bf16; do run fmnist "$OUT/fmnist-data/run.toml" "$s" "$p"; done
done
/usr/bin/python3 - "$OUT" <<'EOF' | tee "$OUT/guard.txt"
import glob, json, os, re, sys, collections
out = sys.argv[1]
acc = collections.defaultdict(dict)  # (data, task) -> {(seed, precision): accuracy}
for path in sorted(glob.glob(os.path.join(out, "runs", "*", "metrics.json"))):
    name, seed, prec = re.match(r"(\w+)-s(\d+)-(\w+)$", os.path.basename(os.path.dirname(path))).groups()
    try:
        metrics = json.load(open(path))
    except (OSError, ValueError) as e:
        sys.exit(f"precision_guard.sh: {path}: cannot read its metrics ({e})")
    tasks = metrics["tasks"] if "tasks" in metrics else metrics
    for task, m in tasks.items():
        if isinstance(m, dict) and "accuracy" in m:
            acc[(name, task)][(int(seed), prec)] = m["accuracy"]
ok = True
print(f"{'data':7} {'task':6} {'seed':>4} {'fp32':>7} {'bf16':>7}")
for (name, task), a in sorted(acc.items()):
    seeds = sorted({s for s, _ in a})
    for s in seeds:
        print(f"{name:7} {task:6} {s:4d} {a.get((s, 'fp32'), float('nan')):7.3f} {a.get((s, 'bf16'), float('nan')):7.3f}")
    both = [s for s in seeds if (s, "fp32") in a and (s, "bf16") in a]
    f = sum(a[(s, "fp32")] for s in both) / len(both)
    b = sum(a[(s, "bf16")] for s in both) / len(both)
    within = b >= f - 0.01
    ok &= within
    print(f"{name:7} {task:6} mean {f:7.3f} {b:7.3f}  bf16 - fp32 = {100 * (b - f):+.1f} points: "
          f"{'within 1 point' if within else 'MORE THAN 1 POINT BELOW'}")
print("guard:", "holds" if ok else "FAILS")
sys.exit(0 if ok else 1)
EOF
