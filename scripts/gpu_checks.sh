#!/usr/bin/env bash
# The GPU checks of issue 10 in one script (under 10 minutes: each step has its own timeout, the
# least important last), for a lent GPU machine (the `device` tool) or any
# CUDA machine: the harness's CUDA rows, compute-sanitizer's memcheck over them, the benchmark
# of every case at DeepSeek-V2 sizes, and the same MoE layer in PyTorch.
#
#   bash scripts/gpu_checks.sh prepare   # here (any machine with the toolkit): builds the two
#                                        # programs for sm_90 and packs them into .gpu/ (static
#                                        # OpenBLAS, so only the CUDA runtime and cuBLAS are
#                                        # needed there)
#   bash scripts/gpu_checks.sh run       # on the GPU machine: writes logs and JSON under $OUT
#                                        # (GPU_CHECKS_SKIP_TORCH=1 leaves out the PyTorch runs;
#                                        # GPU_CHECKS_BENCH_FILTER=text times only matching cases)
#
# The device machine has no project dependencies (gRPC, GoogleTest, ...), so the programs travel
# prebuilt; `run` finds the CUDA 13 runtime and cuBLAS there.
set -uo pipefail
cd "$(dirname "$0")/.."

prepare() {
  export CCACHE_BASEDIR="$PWD"
  # A Release tree keeps warnings but not as errors (the top-level CMakeLists.txt says why).
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DBLA_STATIC=ON >/dev/null || exit 1
  cmake --build build-gpu --target kernel_ops_test kernel_ops_gpu -j"$(nproc)" || exit 1
  # Stripped and xz-packed (about 4 MB instead of 52): the device tool carries at most 64 MiB.
  local stage
  stage="$(mktemp -d)"
  for program in build-gpu/tests/kernel_ops_test build-gpu/bench/kernel_ops_gpu; do
    strip -o "$stage/$(basename "$program")" "$program"
  done
  ldd "$stage/kernel_ops_test" | grep -v -E 'libc\.|libm\.|libstdc|libgcc|ld-linux|vdso|libdl|libpthread|librt'
  mkdir -p .gpu
  tar -C "$stage" -cJf .gpu/programs.tar.xz kernel_ops_test kernel_ops_gpu
  git rev-parse HEAD >.gpu/commit.txt
  rm -rf "$stage"
  ls -la .gpu
}

find_cuda_libs() {
  local dir
  for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64; do
    [ -e "$dir/libcublas.so.13" ] && { echo "$dir"; return; }
  done
  # PyTorch's CUDA 13 wheels carry their own copies.
  find /usr /opt -name 'libcublas.so.13' 2>/dev/null | head -1 | xargs -r dirname
}

run() {
  local out="${OUT:-/tmp/gpu-checks}"
  local bin=/tmp/gpu-programs
  mkdir -p "$out" "$bin"
  tar -C "$bin" -xJf .gpu/programs.tar.xz || exit 1
  # At most 8 files come back from the device tool: the 8 below; the rest goes to stdout.
  echo "programs built at commit $(cat .gpu/commit.txt)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem,temperature.gpu,power.draw \
    --format=csv
  local libs cudart_dir
  libs="$(find_cuda_libs)"
  cudart_dir="$(find /usr /opt -name 'libcudart.so.13' 2>/dev/null | head -1 | xargs -r dirname)"
  export LD_LIBRARY_PATH="${libs}:${cudart_dir}:${LD_LIBRARY_PATH:-}"
  echo "cuBLAS from: $libs; cudart from: $cudart_dir"
  ldd "$bin/kernel_ops_test" | grep -E 'not found|cublas|cudart'

  echo "== harness: every CUDA case against its reference"
  timeout 120 "$bin/kernel_ops_test" --gtest_filter='cuda.*' --gtest_output="json:$out/harness.json" \
    >"$out/harness.log" 2>&1
  echo "harness exit $?"
  grep -E '^\[  (FAILED|SKIPPED) |^\[  PASSED|tests ran' "$out/harness.log" | head -40
  grep -B2 -A6 'Failure' "$out/harness.log" | head -60

  echo "== benchmark at DeepSeek-V2 sizes"
  timeout 240 "$bin/kernel_ops_gpu" --repeats 10 --filter "${GPU_CHECKS_BENCH_FILTER:-}" \
    --json "$out/bench.jsonl" 2>&1 | tee "$out/bench.md"
  echo "bench exit $?"

  if [ -n "${GPU_CHECKS_SKIP_TORCH:-}" ]; then
    echo "== PyTorch runs skipped (GPU_CHECKS_SKIP_TORCH is set)"
  else
  echo "== the same MoE layer in PyTorch"
  PYTHONUNBUFFERED=1 timeout 120 python3 bench/moe_layer_torch.py --out "$out/torch.json" 2>&1 |
    tee "$out/torch.md"
  echo "torch exit $?"
  echo "== PyTorch, routed experts only and unskewed gate: the layer moe_layer/* times"
  PYTHONUNBUFFERED=1 timeout 120 python3 bench/moe_layer_torch.py --shared-experts 0 \
    --bias-sigma 0 --out "$out/torch_parity.json" 2>&1 | tee "$out/torch_parity.md"
  echo "torch parity exit $?"
  fi

  echo "== compute-sanitizer memcheck over the CUDA cases"
  if command -v compute-sanitizer >/dev/null; then
    timeout 100 compute-sanitizer --tool memcheck --print-limit 20 "$bin/kernel_ops_test" \
      --gtest_filter='cuda.*' >/tmp/memcheck.log 2>&1
    echo "memcheck exit $?"
    grep -E 'ERROR SUMMARY|Invalid|out of bounds|FAILED' /tmp/memcheck.log | head -20
  fi
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
