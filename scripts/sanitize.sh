#!/usr/bin/env bash
# Builds DRIFA with clang, AddressSanitizer, UndefinedBehaviorSanitizer and the libFuzzer targets
# into ./build-asan, then runs tests there.
#   bash scripts/sanitize.sh          the parser tests, the bad-input tests and every fuzz corpus (what CI runs)
#   bash scripts/sanitize.sh --all    the whole test suite under the sanitizers
set -euo pipefail
cd "$(dirname "$0")/.."
# LibTorch leaks by design at exit (static registries); the leak checker would fail every process.
# A Python peer started by a test loads its own (uninstrumented) LibTorch: it must not inherit the runtime.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DDRIFA_FUZZ=ON \
  > build-asan-configure.log 2>&1 || { cat build-asan-configure.log; exit 1; }
cd build-asan
if [ "${1:-}" = "--all" ]; then
  cmake --build . -j"$(nproc)"
  ctest -j"$(nproc)" --output-on-failure
else
  cmake --build . -j"$(nproc)" --target drifa drifa_parser_tests \
    fuzz_safetensors fuzz_csv fuzz_settings_toml fuzz_settings_json fuzz_run_files fuzz_image fuzz_dicom fuzz_serve_request \
    fuzz_nifti fuzz_dicom_series
  ctest -j"$(nproc)" -L sanitize --output-on-failure
fi
