#!/usr/bin/env bash
# Sets up a new machine (scripts/setup.sh), builds, and runs every test: the ctest suite
# (GoogleTest units, Python-client checks, fuzz-corpus replays) and a short libFuzzer run of each
# parser. Exits non-zero on any failure. This is what CI runs (.ci/run).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
start=$(date +%s)
bash scripts/setup.sh
# The images the container tests run, from the binaries just built. Needs root (rootful podman);
# where it ran, a missing or stale image fails the container tests instead of skipping them.
if [[ $(id -u) -eq 0 ]]; then
  bash scripts/build_images.sh
  export KUBEMOE_REQUIRE_CONTAINERS=1
else
  echo "test: not root, so no images are built and the container tests will skip"
fi
built=$(date +%s)
echo "test: set-up, build and images took $((built - start)) s"
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j"$(nproc)" --timeout 600
tested=$(date +%s)
echo "test: ctest took $((tested - built)) s"
if [[ -n ${KUBEMOE_REQUIRE_CONTAINERS:-} ]]; then
  # The operator image (which the container tests do not start) and the users' multi-stage build.
  bash scripts/check_images.sh
  bash scripts/check_multistage_build.sh operator
  echo "test: image checks took $(($(date +%s) - tested)) s"
  tested=$(date +%s)
fi
FUZZ_SECONDS=${FUZZ_SECONDS:-20} bash scripts/fuzz.sh
echo "test: fuzzing took $(($(date +%s) - tested)) s; total $(($(date +%s) - start)) s"
