#!/usr/bin/env bash
# The main job: install what is missing, build, and run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
./build/drifa info
