#!/usr/bin/env python3
"""Serving load generator: the single-process engine against the local cluster, same HTTP API.

For each concurrency level, C clients each stream completions back to back (the `openai` client,
temperature 0, fixed prompt and output lengths, EOS ignored by capping nothing: the model may stop
early, tokens are counted as received) until the level's request count is done. Reported per
level: output tokens/s over the level's wall time, time to first token and inter-token latency
p50/p99. Then the ratio cluster/single at each level, and from the router's /metrics the
dispatch bytes per token per MoE layer against the minimum (hidden_size x 2 bytes x destinations,
both ways).

  single : kubemoe-router --model-dir DIR (no placement: every expert in the router process)
  cluster: kubemoe up with a MoEModel of SHARDS CPU shards (router + SHARDS workers)

Bounded: request counts, max_tokens and every wait are fixed; only loopback is used.
    bench/serving_bench.py --build build --model /tmp/bench --shards 4 --levels 1,8,32
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import openai


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server not ready in time")


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def run_level(port, model, concurrency, requests, prompt, max_tokens):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none",
                           max_retries=0, timeout=600)
    lock = threading.Lock()
    todo = list(range(requests))
    ttft, itl, tokens, errors = [], [], [0], [0]

    def client_loop():
        while True:
            with lock:
                if not todo:
                    return
                todo.pop()
            start = time.monotonic()
            last, n = None, 0
            try:
                for chunk in client.completions.create(model=model, prompt=prompt,
                                                       max_tokens=max_tokens, temperature=0,
                                                       stream=True):
                    if not chunk.choices or not chunk.choices[0].text:
                        continue
                    now = time.monotonic()
                    with lock:
                        if last is None:
                            ttft.append(now - start)
                        else:
                            itl.append(now - last)
                    last, n = now, n + 1
            except openai.APIError as e:
                with lock:
                    errors[0] += 1
                print(f"  request failed: {e}", file=sys.stderr)
            with lock:
                tokens[0] += n

    threads = [threading.Thread(target=client_loop) for _ in range(concurrency)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    return {"concurrency": concurrency, "requests": requests, "errors": errors[0],
            "output_tokens": tokens[0], "wall_s": wall, "tokens_per_s": tokens[0] / wall,
            "ttft_p50": percentile(ttft, 0.5), "ttft_p99": percentile(ttft, 0.99),
            "itl_p50": percentile(itl, 0.5), "itl_p99": percentile(itl, 0.99)}


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    from prometheus_client.parser import text_string_to_metric_families
    sums = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + ("{" + s.labels.get("direction", "") + "}" if "direction" in s.labels
                            else "")
            sums[key] = sums.get(key, 0.0) + s.value
    return sums


def moe_model_yaml(config, shards):
    moe_layers = sum(1 for l in range(config["num_hidden_layers"])
                     if l >= config.get("first_k_dense_replace", 0)
                     and l % config.get("moe_layer_freq", 1) == 0)
    return f"""apiVersion: kubemoe.io/v1alpha1
kind: MoEModel
metadata:
  name: bench
spec:
  model:
    name: bench
    source:
      hostPath:
        path: /unused
    routedExperts: {config["n_routed_experts"]}
    moeLayers: {moe_layers}
    expertsPerToken: {config["num_experts_per_tok"]}
  router:
    batching: {{maxBatchSize: 64, maxBatchTokens: 8192, maxQueueDelayMs: 5}}
  experts:
    shards: {shards}
    devicesPerShard: 1
    deviceType: cpu
  transport: grpc
"""


def serve(kind, args, tmp, port):
    if kind == "single":
        cmd = [os.path.join(args.build, "kubemoe-router"), f"--model-dir={args.model}",
               "--served-model-name=bench", "--http-address=127.0.0.1", f"--http-port={port}"]
    else:
        with open(os.path.join(args.model, "config.json")) as f:
            config = json.load(f)
        spec = os.path.join(tmp, "bench.yaml")
        with open(spec, "w") as f:
            f.write(moe_model_yaml(config, args.shards))
        cmd = [os.path.join(args.build, "kubemoe"), "up", "-f", spec, "--model", args.model,
               "--port", str(port), "--run-dir", os.path.join(tmp, "run")]
    log = open(os.path.join(tmp, f"{kind}.log"), "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    return proc


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--build", default="build")
    p.add_argument("--model", required=True)
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--levels", default="1,8,32")
    p.add_argument("--requests", type=int, default=0, help="per level (default: 2 x level)")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--prompt", default="Mixture-of-Experts models route each token to a few "
                   "experts, so serving them well means moving hidden states to the experts.")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    with open(os.path.join(args.model, "config.json")) as f:
        hidden = json.load(f)["hidden_size"]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("single", "cluster"):
            port = free_port()
            proc = serve(kind, args, tmp, port)
            try:
                wait_ready(port, proc, 900)
                run_level(port, "bench", 1, 1, args.prompt, 2)  # warm-up
                before = scrape(port)
                rows = []
                for c in levels:
                    rows.append(run_level(port, "bench", c, args.requests or 2 * c, args.prompt,
                                          args.max_tokens))
                    print(f"{kind} c={c}: {rows[-1]}", file=sys.stderr, flush=True)
                after = scrape(port)
                results[kind] = {"levels": rows, "metrics_delta": {
                    k: after.get(k, 0) - before.get(k, 0) for k in after}}
            finally:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print("| level | single tok/s | cluster tok/s | cluster/single | TTFT p50/p99 single (s) | "
          "TTFT p50/p99 cluster (s) | ITL p50/p99 single (s) | ITL p50/p99 cluster (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for s, c in zip(results["single"]["levels"], results["cluster"]["levels"]):
        print(f"| {s['concurrency']} | {s['tokens_per_s']:.2f} | {c['tokens_per_s']:.2f} | "
              f"{c['tokens_per_s'] / s['tokens_per_s']:.2f} | {s['ttft_p50']:.3f} / "
              f"{s['ttft_p99']:.3f} | {c['ttft_p50']:.3f} / {c['ttft_p99']:.3f} | "
              f"{s['itl_p50']:.3f} / {s['itl_p99']:.3f} | {c['itl_p50']:.3f} / "
              f"{c['itl_p99']:.3f} |")
    d = results["cluster"]["metrics_delta"]
    sent = d.get("kubemoe_router_dispatch_bytes_total{sent}", 0)
    received = d.get("kubemoe_router_dispatch_bytes_total{received}", 0)
    destinations = d.get("kubemoe_router_dispatch_tokens_total", 0)
    token_layers = d.get("kubemoe_router_routed_tokens_total", 0)
    if destinations and token_layers:
        minimum = hidden * 2 * destinations * 2
        print(f"\ndispatch: {(sent + received) / token_layers:.0f} bytes per token per MoE layer "
              f"({destinations / token_layers:.2f} destinations); minimum "
              f"{minimum / token_layers:.0f} (hidden {hidden} x 2 B x destinations x 2 ways); "
              f"ratio {(sent + received) / minimum:.3f}")
        results["dispatch"] = {"bytes_per_token_layer": (sent + received) / token_layers,
                               "destinations_per_token_layer": destinations / token_layers,
                               "ratio_to_minimum": (sent + received) / minimum}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
