#!/usr/bin/env bash
# One prepared GPU check (for a lent CUDA machine): build against that machine's PyTorch
# LibTorch, compare CUDA and CPU outputs, then the benchmark harness on CUDA (DRIFA beside the
# PyTorch peer, training, inference, mixed precision, the Monte Carlo study).
# Results go to $OUT (or ./device-out) as device.log.
set -uo pipefail
out=${OUT:-device-out}; mkdir -p "$out"; exec > >(tee "$out/device.log") 2>&1
nvidia-smi -L || true
py=$(command -v python3)
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
for p in libopencv-dev libgdcm-dev libtomlplusplus-dev nlohmann-json3-dev libcli11-dev; do
  dpkg -s "$p" > /dev/null 2>&1 && echo "have $p" || echo "MISSING $p"
done
prefix=$($py -c 'import torch; print(torch.utils.cmake_prefix_path)')
t0=$(date +%s)
cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DDRIFA_BUILD_TESTS=OFF -DDRIFA_CORE_ONLY=ON -DCMAKE_PREFIX_PATH="$prefix" \
  > "$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; exit 1; }
cmake --build build-cuda -j"$(nproc)" --target drifa_bench > "$out/build.log" 2>&1 || { grep -m 20 -A5 error "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
b=./build-cuda/drifa_bench
$b --device cuda --check-against-cpu --batch 4
$b --device cuda --check-against-cpu --batch 4 --preset four
DRIFA_PEER_PYTHON=$py $py bench/run_bench.py --device cuda --core-only --build build-cuda --steps 5
