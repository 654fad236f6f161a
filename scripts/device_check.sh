#!/usr/bin/env bash
# One prepared GPU check (for a lent CUDA machine): build against that machine's PyTorch
# LibTorch, compare CUDA and CPU outputs, time training steps and inference on CUDA.
# Results go to $OUT (or ./device-out) as device.log.
set -uo pipefail
out=${OUT:-device-out}; mkdir -p "$out"; exec > >(tee "$out/device.log") 2>&1
nvidia-smi -L || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
for p in libopencv-dev libgdcm-dev libtomlplusplus-dev nlohmann-json3-dev libcli11-dev; do
  dpkg -s "$p" > /dev/null 2>&1 && echo "have $p" || echo "MISSING $p"
done
prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DDRIFA_BUILD_TESTS=OFF -DDRIFA_CORE_ONLY=ON -DCMAKE_PREFIX_PATH="$prefix" \
  > "$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; exit 1; }
cmake --build build-cuda -j"$(nproc)" --target drifa_bench > "$out/build.log" 2>&1 || { grep -m 20 -A5 error "$out/build.log"; exit 1; }
b=./build-cuda/drifa_bench
$b --device cuda --check-against-cpu --batch 4
$b --device cuda --what train --steps 10 --warmup 3
$b --device cuda --what infer --steps 10 --warmup 3
$b --device cuda --what train --preset four --steps 5 --warmup 2
$b --device cpu --what train --steps 2 --warmup 1   # the same machine's CPU, for scale
