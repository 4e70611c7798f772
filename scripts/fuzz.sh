#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each briefly on a scratch copy
# of its committed corpus. Crashing inputs land in fuzz-artifacts/ and fail the run.
#   FUZZ_SECONDS=30 scripts/fuzz.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seconds=${FUZZ_SECONDS:-20}
build=${FUZZ_BUILD_DIR:-build-fuzz}
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKUBEMOE_FUZZ=ON -DKUBEMOE_WERROR=OFF >/dev/null
cmake --build "$build" -j"$(nproc)"
mkdir -p fuzz-artifacts
passed=0
failed=0
for fuzzer in "$build"/tests/fuzz/*_fuzz; do
  name=$(basename "$fuzzer")
  scratch=$(mktemp -d)
  cp -r "tests/fuzz/corpus/$name/." "$scratch/"
  echo "fuzz: $name for ${seconds}s"
  if "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="fuzz-artifacts/$name-" "$scratch" >"fuzz-artifacts/$name.log" 2>&1; then
    passed=$((passed + 1))
    grep -E '^(#[0-9]+.*DONE|Done)' "fuzz-artifacts/$name.log" | tail -n 1 || true
  else
    failed=$((failed + 1))
    echo "fuzz: $name FAILED; last lines of fuzz-artifacts/$name.log:"
    tail -n 40 "fuzz-artifacts/$name.log"
  fi
  rm -rf "$scratch"
done
echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
