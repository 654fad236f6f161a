#!/usr/bin/env bash
# The whole test suite: install what is missing, build, run every test; then the parser tests and
# fuzz corpora under the sanitizers (scripts/sanitize.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
(cd build && ctest -j"$(nproc)" --output-on-failure)
# The parsers, readers and bad-input cases again under ASan + UBSan, and every fuzz corpus.
bash scripts/sanitize.sh
