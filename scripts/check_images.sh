#!/usr/bin/env bash
# Checks the images scripts/build_images.sh made, run the way the operator's pods run them
# (user 65532:65532, read-only root filesystem with only /tmp writable, all capabilities dropped,
# no privilege escalation, model and placement mounted read-only at the operator's paths):
#   1. each image's binary prints its usage (--help exits 0);
#   2. ldd inside each image finds every shared library;
#   3. a real start: two worker shards and a router on a tiny random model, the router's
#      /healthz, /readyz, /v1/models and one /v1/chat/completions answered.
# Host networking on 127.0.0.1 only: quick, and no bridge needed (the container tests,
# tests/py/containers_e2e_test.py, run pods on a podman bridge network of their own).
# Everything it starts is named kubemoe-check-* and removed on exit.
#   scripts/check_images.sh            (KUBEMOE_CLI: the kubemoe CLI that makes the tiny model;
#                                       default build/kubemoe)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
source "$root/scripts/podman_env.sh"

repo=${IMAGE_REPO:-ghcr.io/kubemoe}
tag=${IMAGE_TAG:-$(awk -F'"' '/^appVersion:/{print $2}' charts/kubemoe/Chart.yaml)}
cli=${KUBEMOE_CLI:-$root/build/kubemoe}
# Ports on 127.0.0.1 the kernel says are free now (other work shares these machines).
read -r -a ports <<<"$(python3 -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')"
http_port=${ports[0]}
grpc_ports=("${ports[1]}" "${ports[2]}")
metrics_ports=("${ports[3]}" "${ports[4]}")

fail() { echo "check_images: FAIL: $*" >&2; exit 1; }
say() { echo "check_images: $*"; }

# The pods' securityContext, as operator/api/objects.cc writes it.
secure=(--user 65532:65532 --read-only --read-only-tmpfs=false --tmpfs "/tmp:rw,size=64m"
        --cap-drop=ALL --security-opt no-new-privileges "${podman_limits[@]}")

work=$(mktemp -d /tmp/kubemoe-check.XXXXXX)
started=()
cleanup() {
  for name in "${started[@]}"; do pm rm -f -t 2 "$name" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

for c in operator router worker; do
  image=$repo/kubemoe-$c:$tag
  pm image exists "$image" || fail "$image missing; run scripts/build_images.sh"
  out=$(pm run --rm --network none "${secure[@]}" "$image" --help 2>&1) ||
    fail "$image --help exited non-zero: $out"
  grep -q "^Usage: /usr/local/bin/kubemoe-$c" <<<"$out" || fail "$image --help printed no usage: $out"
  say "$image --help: $(head -n1 <<<"$out")"
  libs=$(pm run --rm --network none "${podman_limits[@]}" --entrypoint ldd "$image" \
    "/usr/local/bin/kubemoe-$c" 2>&1) || fail "ldd in $image failed: $libs"
  if grep -q 'not found' <<<"$libs"; then fail "$image lacks libraries: $(grep 'not found' <<<"$libs")"; fi
  say "$image ldd: $(grep -c '=>' <<<"$libs") libraries, none missing"
done

# The tiny model and the placement the operator writes for it (2 shards, contiguous); the
# placement is the operator's golden ConfigMap for the tiny-cpu MoEModel.
[[ -x $cli ]] || fail "$cli missing; build the project or set KUBEMOE_CLI"
"$cli" make-model --preset tiny --out "$work/model" --seed 1 >/dev/null
mkdir -p "$work/placement"
python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["data"]["placement.yaml"], end="")' \
  tests/data/operator/golden/tiny-cpu/configmap-tiny-placement.json >"$work/placement/placement.yaml"
chmod -R a+rX "$work"
mounts=(-v "$work/model:/models:ro" -v "$work/placement:/etc/kubemoe/placement:ro")

for i in 0 1; do
  name=kubemoe-check-worker-$i
  pm rm -f "$name" >/dev/null 2>&1 || true
  started+=("$name")
  pm run -d --name "$name" --network host "${secure[@]}" "${mounts[@]}" \
    -e KUBEMOE_SHARD_INDEX=$i "$repo/kubemoe-worker:$tag" \
    --model-dir=/models --placement=/etc/kubemoe/placement/placement.yaml --devices=1 \
    --device-type=cpu --transport=grpc --listen-address=127.0.0.1 --threads=1 \
    "--grpc-port=${grpc_ports[$i]}" "--metrics-port=${metrics_ports[$i]}" >/dev/null
done
name=kubemoe-check-router
pm rm -f "$name" >/dev/null 2>&1 || true
started+=("$name")
pm run -d --name "$name" --network host "${secure[@]}" "${mounts[@]}" "$repo/kubemoe-router:$tag" \
  --model-dir=/models --served-model-name=tiny --placement=/etc/kubemoe/placement/placement.yaml \
  --shards=2 "--expert-addresses=127.0.0.1:${grpc_ports[0]},127.0.0.1:${grpc_ports[1]}" \
  --transport=grpc --http-address=127.0.0.1 "--http-port=$http_port" --threads=1 >/dev/null

base_url=http://127.0.0.1:$http_port
ready=0
for _ in $(seq 1 60); do
  if curl -sf "$base_url/readyz" >/dev/null 2>&1; then ready=1; break; fi
  sleep 1
done
if ((!ready)); then
  for n in "${started[@]}"; do echo "--- logs of $n" >&2; pm logs "$n" 2>&1 | tail -n 20 >&2; done
  fail "the router was not ready within 60 s"
fi
say "router ready: /healthz $(curl -s -o /dev/null -w '%{http_code}' "$base_url/healthz"), /readyz 200"
models=$(curl -sf "$base_url/v1/models") || fail "/v1/models failed"
grep -q '"tiny"' <<<"$models" || fail "/v1/models does not list tiny: $models"
say "/v1/models: $models"
chat=$(curl -sf -m 60 "$base_url/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model":"tiny","messages":[{"role":"user","content":"Hello"}],"max_tokens":8,"temperature":0}') ||
  fail "/v1/chat/completions failed"
grep -q '"chat.completion"' <<<"$chat" || fail "/v1/chat/completions answered: $chat"
say "/v1/chat/completions: $chat"
# The routed experts ran in the worker containers: each shard counted expert tokens.
for i in 0 1; do
  metrics=$(curl -sf "http://127.0.0.1:${metrics_ports[$i]}/metrics") || fail "worker $i /metrics failed"
  tokens=$(awk '$1 ~ /^kubemoe_worker_expert_tokens_total/ {s += $2} END {print s + 0}' <<<"$metrics")
  awk -v t="$tokens" 'BEGIN {exit !(t > 0)}' || fail "worker $i computed no expert tokens"
  say "worker $i: $(pm logs "kubemoe-check-worker-$i" 2>&1 | grep -m1 'serving gRPC' || true);" \
    "kubemoe_worker_expert_tokens_total $tokens"
done
say "all checks passed"
