#!/usr/bin/env bash
# Every command's JSON/CSV outputs of this tree against another commit's (issue 27's guard for
# restructurings): builds the other commit's drifa once (cached under /var/tmp), runs
# tests/outputs/every_command.sh with both binaries, compares to 1e-6.
#   scripts/outputs_equal.sh [REV | PATH/TO/drifa]     (default REV: HEAD~1; this tree: build/drifa)
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-HEAD~1}
if [ -x "$base" ] && [ -f "$base" ]; then
  base_bin=$(realpath "$base")
else
  rev=$(git rev-parse --short "$base")
  tree=/var/tmp/drifa-outputs-base/$rev
  if [ ! -x "$tree/build/drifa" ]; then
    rm -rf "$tree" && mkdir -p "$(dirname "$tree")" && git worktree prune
    git worktree add --detach "$tree" "$rev" >/dev/null
    cmake -S "$tree" -B "$tree/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$tree/build" --target drifa -j"$(nproc)"
  fi
  base_bin=$tree/build/drifa
fi
[ -x build/drifa ] || bash scripts/build.sh
work=$(mktemp -d /var/tmp/drifa-outputs.XXXXXX)
bash tests/outputs/every_command.sh "$base_bin" "$work/base" > "$work/base.log" 2>&1 || { tail -20 "$work/base.log"; exit 1; }
bash tests/outputs/every_command.sh build/drifa "$work/this" > "$work/this.log" 2>&1 || { tail -20 "$work/this.log"; exit 1; }
python3 tests/outputs/compare.py "$work/base" "$work/this"
rm -rf "$work"
