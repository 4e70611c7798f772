#!/usr/bin/env bash
# The main job on a new machine: set up and build, write the tiny random DeepSeek-V2 checkpoint,
# start the local cluster from the tiny sample MoEModel (`kubemoe up`: the router and two
# expert-shard workers as processes on loopback), send one chat request with the curl line
# `kubemoe up` prints, show the answer and the per-expert routing counts from the workers'
# /metrics, and stop the cluster.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
model=${MODEL_DIR:-$root/build/models/tiny}
port=${PORT:-8000}
build/kubemoe make-model --preset tiny --out "$model" --seed 1
run_dir=$(mktemp -d)
log="$run_dir/kubemoe-up.out"
build/kubemoe up -f manifests/samples/tiny-cpu.yaml --model "$model" --port "$port" \
  --run-dir "$run_dir" >"$log" 2>&1 &
up_pid=$!
# Always stop the cluster; show its output when something failed.
trap 'status=$?; kill -INT $up_pid 2>/dev/null; wait $up_pid 2>/dev/null; ((status)) && cat "$log"; echo "local cluster stopped"' EXIT
for _ in $(seq 1 600); do
  grep -q 'kubemoe up: ready' "$log" && break
  kill -0 $up_pid 2>/dev/null || { echo "kubemoe up exited early"; exit 1; }
  sleep 0.2
done
grep -q 'kubemoe up: ready' "$log" || { echo "the local cluster did not become ready"; exit 1; }
cat "$log"
echo
# The curl line kubemoe up printed, as printed. Random weights: the text is gibberish, but every
# layer runs, the routed experts on the workers.
curl_line=$(sed -n 's/^kubemoe up: try: //p' "$log")
echo "\$ $curl_line"
answer=$(eval "$curl_line")
echo "$answer"
echo
echo "Per-expert routing counts from the workers' /metrics:"
for pid in $(python3 -c "import json,sys; print(' '.join(str(v) for k, v in json.load(open(sys.argv[1])).items() if k.startswith('worker')))" "$run_dir/processes.json"); do
  metrics_port=$(tr '\0' '\n' </proc/"$pid"/cmdline | sed -n 's/^--metrics-port=//p')
  curl -s "http://127.0.0.1:$metrics_port/metrics" | grep '^kubemoe_worker_expert_tokens_total' || true
done
