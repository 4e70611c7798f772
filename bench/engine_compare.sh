#!/usr/bin/env bash
# One run of engine_bench over the configurations the CPU-speed figures compare, back to back
# on the same machine, and a summary table: this tree at 1 and 2 threads with the weights as
# stored, with Q8_0 weights, with a bf16 KV cache, and (optional) an engine_bench binary built
# from an earlier commit (same model, its own defaults).
#   bench/engine_compare.sh MODEL_DIR [PREVIOUS_ENGINE_BENCH] [OUT_DIR]
# MODEL_DIR: `build/kubemoe make-model --preset bench --out DIR --dtype bf16`.
# PREVIOUS_ENGINE_BENCH: e.g. a worktree of the previous main, built with
#   git worktree add /tmp/prev <commit> && cmake -S /tmp/prev -B /tmp/prev/build -G Ninja \
#     -DCMAKE_BUILD_TYPE=Release && ninja -C /tmp/prev/build engine_bench
set -euo pipefail
model=${1:?usage: bench/engine_compare.sh MODEL_DIR [PREVIOUS_ENGINE_BENCH] [OUT_DIR]}
previous=${2:-}
out=${3:-$(mktemp -d)}
here=$(cd "$(dirname "$0")/.." && pwd)
bench=${ENGINE_BENCH:-$here/build/bench/engine_bench}
mkdir -p "$out"

run() {  # name, then the command
  local name=$1
  shift
  echo "== $name: $*" >&2
  "$@" --benchmark_format=json --benchmark_out="$out/$name.json" \
    --benchmark_out_format=json >"$out/$name.txt" 2>&1
  grep -h "peak RSS" "$out/$name.txt" >&2 || true
}

run threads2 "$bench" --model="$model" --threads=2
run threads1 "$bench" --model="$model" --threads=1
run q8_0 "$bench" --model="$model" --threads=2 --weight-dtype=q8_0
run kv_bf16 "$bench" --model="$model" --threads=2 --kv-cache-dtype=bf16 \
  --benchmark_filter='BM_(ReadBandwidth|DenseGemm|Decode)'
if [[ -n "$previous" ]]; then
  run previous env KUBEMOE_BENCH_MODEL="$model" "$previous"
fi
python3 - "$out" <<'PY'
import json, pathlib, re, sys
out = pathlib.Path(sys.argv[1])
rows = {}
for f in sorted(out.glob("*.json")):
    data = json.loads(f.read_text())
    for b in data["benchmarks"]:
        name = re.sub(r"/(real_time|min_time:[0-9.]+)", "", b["name"])
        rows.setdefault(name, {})[f.stem] = b
configs = [p.stem for p in sorted(out.glob("*.json"))]
print("| benchmark | " + " | ".join(configs) + " |")
print("|---|" + "---|" * len(configs))
for name, by in rows.items():
    cells = []
    for c in configs:
        b = by.get(c)
        if b is None:
            cells.append("")
            continue
        parts = []
        if "items_per_second" in b: parts.append(f"{b['items_per_second']:.1f} tok/s")
        for k in ("GB_s", "GFLOP_s", "weight_GB_s", "of_read_bw", "of_best_gemm"):
            if k in b: parts.append(f"{k} {b[k]:.3g}")
        cells.append(", ".join(parts))
    print(f"| {name} | " + " | ".join(cells) + " |")
for f in sorted(out.glob("*.txt")):
    for line in f.read_text().splitlines():
        if line.startswith("peak RSS"): print(f"{f.stem}: {line}")
PY
