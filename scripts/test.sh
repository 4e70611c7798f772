#!/usr/bin/env bash
# Sets up a new machine (scripts/setup.sh), builds, and runs every test: the ctest suite
# (GoogleTest units, Python-client checks, fuzz-corpus replays) and a short libFuzzer run of each
# parser. Exits non-zero on any failure. This is what CI runs (.ci/run).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
start=$(date +%s)
bash scripts/setup.sh
built=$(date +%s)
echo "test: set-up and build took $((built - start)) s"
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j"$(nproc)" --timeout 600
tested=$(date +%s)
echo "test: ctest took $((tested - built)) s"
FUZZ_SECONDS=${FUZZ_SECONDS:-20} bash scripts/fuzz.sh
echo "test: fuzzing took $(($(date +%s) - tested)) s; total $(($(date +%s) - start)) s"
