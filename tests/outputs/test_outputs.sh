#!/usr/bin/env bash
# ctest outputs_reproducible: every command twice with this binary gives the same JSON/CSV to
# 1e-6 (what scripts/outputs_equal.sh needs to compare two commits), and the comparison catches
# a changed probability and a missing file.
set -euo pipefail
here=$(dirname "$(realpath "$0")")
bin=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
bash "$here/every_command.sh" "$bin" "$work/a" > "$work/a.log" 2>&1 || { tail -30 "$work/a.log"; exit 1; }
bash "$here/every_command.sh" "$bin" "$work/b" > "$work/b.log" 2>&1 || { tail -30 "$work/b.log"; exit 1; }
python3 "$here/compare.py" "$work/a" "$work/b"
# one probability moved by 1e-5 must be seen
python3 - "$work/b/run/predictions.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
rows[1][-1] = repr(float(rows[1][-1]) + 1e-5)
csv.writer(open(sys.argv[1], "w", newline="")).writerows(rows)
PY
if python3 "$here/compare.py" "$work/a" "$work/b" > "$work/c.log"; then echo "a changed probability went unseen"; exit 1; fi
grep -q "run/predictions.csv:2" "$work/c.log" || { cat "$work/c.log"; exit 1; }
rm "$work/b/run/uq/uq.json"
if python3 "$here/compare.py" "$work/a" "$work/b" > "$work/c.log"; then echo "a missing file went unseen"; exit 1; fi
grep -q "run/uq/uq.json: only in A" "$work/c.log" || { cat "$work/c.log"; exit 1; }
echo "outputs reproducible; the comparison sees a changed number and a missing file"
rm -rf "$work"
