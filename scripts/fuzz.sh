#!/usr/bin/env bash
# Fuzzes every libFuzzer target for a fixed time under ASan+UBSan (build-asan, see sanitize.sh).
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET=600] [TARGET...]
# New inputs go to a scratch corpus (fuzz/work/<target>, git-ignored) seeded from fuzz/corpus/<target>;
# a finding is saved as fuzz/work/<target>/crash-* and the script exits non-zero. Copy a finding
# into fuzz/regressions/<target>/ and add a test for it once it is fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_safetensors fuzz_csv fuzz_settings_toml fuzz_settings_json fuzz_run_files fuzz_image fuzz_dicom fuzz_serve_request)
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
for t in "${targets[@]}"; do
  [ -x "build-asan/fuzz/$t" ] || { echo "build-asan/fuzz/$t missing: run scripts/sanitize.sh first"; exit 1; }
  work="fuzz/work/$t"
  mkdir -p "$work"
  log="fuzz/work/$t.log"
  # rss_limit: a decoder asked for gigabytes is a finding too. max_len: images need room.
  (cd "$work" && "../../../build-asan/fuzz/$t" -max_total_time="$secs" -rss_limit_mb=2560 -max_len=65536 \
     -timeout=20 -print_final_stats=1 . "../../corpus/$t" > "../$t.log" 2>&1) || status=1
  echo "$t: $(grep -aE '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -1)"
  grep -aE 'stat::number_of_executed_units|stat::peak_rss_mb' "$log" | tr '\n' ' '; echo
  ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* 2>/dev/null && status=1 || true
done
exit $status
