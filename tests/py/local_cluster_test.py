"""The local cluster (`kubemoe up`) end to end, driven by clients we did not write.

Starts `kubemoe up` on the tiny sample MoEModel (router + 2 expert-shard workers as processes on
loopback), then:
  * the official `openai` package: chat, completion, streaming (chunks arrive while generating);
  * `curl` with the line `kubemoe up` prints;
  * `prometheus_client`'s parser on the router's and every worker's /metrics;
  * a client that disconnects mid-stream frees its sequence and KV cache;
  * a dead worker: 16 streaming requests run, one worker is killed (SIGKILL); every request either
    completes or ends with an error event (none hangs, none ends truncated without an error), the
    router stays up, /readyz turns not-ready, `kubemoe up` restarts the worker and new requests
    succeed with the same router process.

Run by ctest (test `local_cluster`) with KUBEMOE_BIN pointing at the CLI (kubemoe-router and
kubemoe-worker beside it). Bounded: every wait has a deadline; the cluster is always stopped.
"""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time

import openai
from prometheus_client.parser import text_string_to_metric_families

from checks import check, free_port, http_get, results

KUBEMOE = os.environ["KUBEMOE_BIN"]
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(SOURCE, "manifests", "samples", "tiny-cpu.yaml")





def wait_for(predicate, seconds, step=0.1):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


class Cluster:
    """`kubemoe up` in the background; its output is collected line by line."""

    def __init__(self, model_dir, run_dir, port):
        self.port = port
        self.run_dir = run_dir
        self.lines = []
        self.proc = subprocess.Popen(
            [KUBEMOE, "up", "-f", SAMPLE, "--model", model_dir, "--port", str(port),
             "--run-dir", run_dir, "--ready-timeout", "120"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self):
        return "\n".join(self.lines)

    def pids(self):
        with open(os.path.join(self.run_dir, "processes.json")) as f:
            return json.load(f)

    def metrics_ports(self):
        """The workers' metrics ports, from their command lines (the plan kubemoe up ran)."""
        ports = {}
        for name, pid in self.pids().items():
            if not name.startswith("worker") or pid <= 0:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode().split("\0")
            for a in args:
                if a.startswith("--metrics-port="):
                    ports[name] = int(a.split("=", 1)[1])
        return ports

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def parse_metrics(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def check_clients(cluster, client, model):
    chat = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hello"}], max_tokens=8,
        temperature=0)
    check("chat has a choice", len(chat.choices) == 1, chat)
    check("chat usage", chat.usage.prompt_tokens > 0 and 0 < chat.usage.completion_tokens <= 8,
          chat.usage)
    check("chat finish reason", chat.choices[0].finish_reason in ("stop", "length"), chat)
    again = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hello"}], max_tokens=8,
        temperature=0)
    check("greedy is deterministic", again.choices[0].message.content ==
          chat.choices[0].message.content)
    done = client.completions.create(model=model, prompt="Mixture of experts", max_tokens=6,
                                     temperature=0)
    check("completion", done.object == "text_completion" and done.usage.completion_tokens <= 6,
          done)
    # Streaming: chunks arrive one by one while the answer is generated.
    stamps, text = [], ""
    stream = client.completions.create(model=model, prompt="Tokens arrive", max_tokens=48,
                                       temperature=0, stream=True)
    finish = None
    for chunk in stream:
        stamps.append(time.monotonic())
        if chunk.choices:
            text += chunk.choices[0].text or ""
            finish = chunk.choices[0].finish_reason or finish
    check("stream finished", finish in ("stop", "length"), finish)
    check("stream has several chunks", len(stamps) >= 3, len(stamps))
    check("first chunk before the end", len(stamps) >= 2 and stamps[0] < stamps[-1], stamps)
    try:
        client.chat.completions.create(model="no-such-model",
                                       messages=[{"role": "user", "content": "x"}])
        check("unknown model is 404", False, "no error")
    except openai.NotFoundError:
        check("unknown model is 404", True)
    # The curl line kubemoe up printed works as printed.
    line = next((l for l in cluster.lines if "try: curl" in l), None)
    check("kubemoe up prints a curl line", line is not None, cluster.output())
    if line:
        argv = shlex.split(line.split("try: ", 1)[1])
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        body = json.loads(out.stdout) if out.returncode == 0 and out.stdout else {}
        check("curl line answers", "choices" in body, out.stdout + out.stderr)


def check_metrics(cluster):
    status, text = http_get(f"http://127.0.0.1:{cluster.port}/metrics")
    check("router /metrics", status == 200, status)
    families = parse_metrics(text)
    for name in ("kubemoe_router_time_to_first_token_seconds",
                 "kubemoe_router_inter_token_latency_seconds",
                 "kubemoe_router_e2e_request_latency_seconds",
                 "kubemoe_router_num_requests_running", "kubemoe_router_num_requests_waiting",
                 "kubemoe_router_kv_cache_usage_ratio", "kubemoe_router_dispatch_seconds",
                 "kubemoe_router_dispatch_bytes", "kubemoe_router_device_limit_divergence_ratio"):
        check(f"router exports {name}", name in families, sorted(families))
    ports = cluster.metrics_ports()
    check("two workers", len(ports) == 2, ports)
    routed = 0
    for name, port in sorted(ports.items()):
        status, text = http_get(f"http://127.0.0.1:{port}/metrics")
        check(f"{name} /metrics", status == 200, status)
        families = parse_metrics(text)
        family = families.get("kubemoe_worker_expert_tokens")
        check(f"{name} exports per-expert tokens", family is not None, sorted(families))
        if family:
            routed += sum(s.value for s in family.samples if s.name.endswith("_total"))
    check("workers ran routed experts", routed > 0, routed)


def metric_value(port, name):
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    if status != 200:
        return None
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                return s.value
    return None


def check_disconnect(cluster, client, model):
    """A client that goes away mid-stream frees its sequence: generation stops long before
    max_tokens, and the running count and KV cache usage return to zero."""
    before = metric_value(cluster.port, "kubemoe_router_generation_tokens_total") or 0
    stream = client.completions.create(model=model, prompt="a long answer", max_tokens=1900,
                                       temperature=0.7, seed=5, stream=True)
    for i, _ in enumerate(stream):
        if i == 2:
            break
    stream.close()
    idle = wait_for(lambda: metric_value(cluster.port, "kubemoe_router_num_requests_running") == 0
                    and metric_value(cluster.port, "kubemoe_router_kv_cache_usage_ratio") == 0, 30)
    after = metric_value(cluster.port, "kubemoe_router_generation_tokens_total") or 0
    check("disconnect frees the sequence and its KV cache", idle)
    check("generation stopped after the disconnect", after - before < 1000, after - before)


def check_dead_worker(cluster, client, model):
    before = cluster.pids()
    outcomes, lock = [], threading.Lock()
    first_chunk = threading.Barrier(17, timeout=60)

    def one(i):
        got_chunk, finish, error, chunks = False, None, None, 0
        try:
            stream = client.completions.create(model=model, prompt=f"request {i}",
                                               max_tokens=400, temperature=0.7, seed=i,
                                               stream=True, timeout=90)
            for chunk in stream:
                chunks += 1
                if not got_chunk:
                    got_chunk = True
                    try:
                        first_chunk.wait()
                    except threading.BrokenBarrierError:
                        pass
                if chunk.choices and chunk.choices[0].finish_reason:
                    finish = chunk.choices[0].finish_reason
        except openai.APIError as e:
            error = e
        except Exception as e:  # a transport error is an outcome too, but not a hang
            error = e
        if not got_chunk:
            try:
                first_chunk.wait()
            except threading.BrokenBarrierError:
                pass
        with lock:
            outcomes.append({"i": i, "finish": finish, "error": error, "chunks": chunks})

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(16)]
    for t in threads:
        t.start()
    try:
        first_chunk.wait()  # every request is streaming
    except threading.BrokenBarrierError:
        pass
    victim = before["worker-1"]
    os.kill(victim, signal.SIGKILL)
    saw_not_ready = wait_for(
        lambda: http_get(f"http://127.0.0.1:{cluster.port}/readyz", timeout=2)[0] == 503, 30,
        step=0.05)
    for t in threads:
        t.join(timeout=120)
    hung = [t for t in threads if t.is_alive()]
    check("no request hangs", not hung, f"{len(hung)} still running")
    completed = [o for o in outcomes if o["error"] is None and o["finish"] in ("stop", "length")]
    errored = [o for o in outcomes if o["error"] is not None]
    silent = [o for o in outcomes if o["error"] is None and o["finish"] is None]
    print(f"dead worker: {len(completed)} completed, {len(errored)} ended with an error, "
          f"{len(silent)} truncated silently; /readyz went 503: {saw_not_ready}", flush=True)
    for o in errored[:3]:
        print(f"  request {o['i']}: {type(o['error']).__name__}: {o['error']}", flush=True)
    check("every request accounted for", len(outcomes) == 16, len(outcomes))
    check("none truncated without an error", not silent, silent)
    check("the kill hit requests in flight", len(errored) >= 1, outcomes)
    check("/readyz turned not-ready", saw_not_ready)
    restarted = wait_for(lambda: cluster.pids().get("worker-1", -1) not in (-1, victim), 60)
    check("kubemoe up restarted the worker", restarted, cluster.output())
    check("kubemoe up said which worker died and how",
          re.search(r"worker-1 \(pid \d+\) exited with killed by signal 9", cluster.output())
          is not None, cluster.output())
    ready = wait_for(
        lambda: http_get(f"http://127.0.0.1:{cluster.port}/readyz", timeout=2)[0] == 200, 60)
    check("ready again", ready)
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "still there?"}], max_tokens=4)
    check("a new request succeeds", answer.choices[0].finish_reason in ("stop", "length"), answer)
    check("same router process", cluster.pids()["router"] == before["router"],
          (before, cluster.pids()))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "tiny")
        made = subprocess.run([KUBEMOE, "make-model", "--preset", "tiny", "--out", model_dir,
                               "--seed", "1"], capture_output=True, text=True, timeout=120)
        check("make-model", made.returncode == 0, made.stderr)
        port = free_port()
        cluster = Cluster(model_dir, os.path.join(tmp, "run"), port)
        try:
            ready = wait_for(lambda: any("ready:" in l for l in cluster.lines)
                             or cluster.proc.poll() is not None, 150)
            check("kubemoe up becomes ready", ready and cluster.proc.poll() is None,
                  cluster.output())
            if ready and cluster.proc.poll() is None:
                client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none",
                                       max_retries=0, timeout=60)
                check_clients(cluster, client, "tiny")
                check_metrics(cluster)
                check_disconnect(cluster, client, "tiny")
                check_dead_worker(cluster, client, "tiny")
        finally:
            code = cluster.stop()
            check("kubemoe up stops cleanly on Ctrl-C", code == 0, f"{code}\n{cluster.output()}")
            if results["failed"]:
                for name in os.listdir(os.path.join(tmp, "run")) if os.path.isdir(
                        os.path.join(tmp, "run")) else []:
                    if name.endswith(".log"):
                        with open(os.path.join(tmp, "run", name)) as f:
                            print(f"--- {name} (last lines)\n" + "".join(f.readlines()[-15:]))
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
