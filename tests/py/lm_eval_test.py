"""lm-evaluation-harness scores the trained tiny DeepSeek-V2 through the router, and its numbers
are the engine's own.

`kubemoe up` serves tests/data/trained/tiny_group_limited as a local cluster (router + 4 expert
shards over gRPC). lm-eval's `local-completions` model (its OpenAI-compatible completions client,
tokenizing with the model's tokenizer through transformers) runs a rolling-loglikelihood task on
the first 24 documents of the held-out split: it sends each document as token ids with echo=true, max_tokens=1, logprobs=1
and sums the prompt tokens' logprobs. `kubemoe eval` computes the same documents' log-likelihood
in-process from the engine's logits. The test checks, per document and in total, that the two
agree (to the bf16 rounding of hidden states on the wire), and that lm-eval's word perplexity is
exp(-sum ll / words).

Then the same cluster with spec.routing.deviceLimit 1: lm-eval's log-likelihood must match
`kubemoe eval`'s M = 1 row for the same placement (contiguous over 4 devices) and be worse than
the faithful one: the curve in docs/device-limit-quality.md is what serving gives.

lm-eval lives in its own venv (.venv-lm-eval, tools/requirements-lm-eval.txt, made by
scripts/setup.sh); the test fails, naming the fix, when it is missing.
"""
import glob
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from checks import check, free_port, results

KUBEMOE = os.environ["KUBEMOE_BIN"]
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(SOURCE, "tests", "data", "trained", "tiny_group_limited")
HELDOUT = os.path.join(MODEL, "heldout.jsonl")
LM_EVAL = os.environ.get("KUBEMOE_LM_EVAL_BIN", os.path.join(SOURCE, ".venv-lm-eval", "bin", "lm_eval"))
DEVICES = 4
DOCUMENTS = 24  # the first 24 held-out documents (about 10k tokens) keep two lm-eval runs short
# Hidden states cross the wire as bf16 (the router's default): per-token log-probabilities then
# differ from the in-process engine's by rounding only.
REL_TOL = 2e-3

TASK_YAML = """task: kubemoe_heldout
dataset_path: json
dataset_kwargs:
  data_files:
    test: {heldout}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
should_decontaminate: false
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
metadata:
  version: 1.0
"""

MOEMODEL_YAML = """apiVersion: kubemoe.io/v1alpha1
kind: MoEModel
metadata:
  name: tiny-trained
spec:
  model:
    name: tiny-trained
    source:
      hostPath:
        path: {model}
    routedExperts: 64
    moeLayers: 2
    expertsPerToken: 6
  router:
    replicas: 1
  experts:
    shards: {devices}
    devicesPerShard: 1
    deviceType: cpu
{routing}  transport: grpc
"""




def ready(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


class Cluster:
    def __init__(self, work, name, device_limit):
        routing = f"  routing:\n    deviceLimit: {device_limit}\n" if device_limit else ""
        self.yaml = os.path.join(work, f"{name}.yaml")
        with open(self.yaml, "w") as f:
            f.write(MOEMODEL_YAML.format(model=MODEL, devices=DEVICES, routing=routing))
        self.port = free_port()
        self.lines = []
        self.proc = subprocess.Popen(
            [KUBEMOE, "up", "-f", self.yaml, "--port", str(self.port),
             "--run-dir", os.path.join(work, name), "--ready-timeout", "120"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=lambda: [self.lines.append(l) for l in self.proc.stdout],
                         daemon=True).start()

    def wait_ready(self, seconds=150):
        deadline = time.time() + seconds
        while time.time() < deadline and self.proc.poll() is None:
            if ready(self.port):
                return True
            time.sleep(0.2)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_lm_eval(work, name, port):
    tasks = os.path.join(work, "tasks")
    os.makedirs(tasks, exist_ok=True)
    with open(os.path.join(tasks, "kubemoe_heldout.yaml"), "w") as f:
        f.write(TASK_YAML.format(heldout=HELDOUT))
    out = os.path.join(work, f"lm-eval-{name}")
    model_args = ",".join([
        "model=tiny-trained", f"base_url=http://127.0.0.1:{port}/v1/completions",
        "tokenizer_backend=huggingface", f"tokenizer={MODEL}", "max_length=512",
        "num_concurrent=1", "max_retries=1", "timeout=120"])
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HOME=os.path.join(work, "hf-home"), TOKENIZERS_PARALLELISM="false")
    cmd = [LM_EVAL, "--model", "local-completions", "--model_args", model_args,
           "--tasks", "kubemoe_heldout", "--include_path", tasks, "--output_path", out,
           "--log_samples", "--batch_size", "1", "--limit", str(DOCUMENTS)]
    started = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    seconds = time.time() - started
    check(f"lm-eval ({name}) exits 0", proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:])
    result_files = glob.glob(os.path.join(out, "**", "results_*.json"), recursive=True)
    sample_files = glob.glob(os.path.join(out, "**", "samples_kubemoe_heldout_*.jsonl"), recursive=True)
    if proc.returncode != 0 or not result_files or not sample_files:
        check(f"lm-eval ({name}) wrote results and samples", False, (result_files, sample_files))
        return None, None
    with open(result_files[0]) as f:
        metrics = json.load(f)["results"]["kubemoe_heldout"]
    samples = []
    with open(sample_files[0]) as f:
        for line in f:
            samples.append(json.loads(line))
    print(f"lm-eval ({name}): {len(samples)} documents in {seconds:.1f} s: "
          f"word_perplexity {metrics.get('word_perplexity,none')}", flush=True)
    return metrics, samples


def kubemoe_eval(work):
    out = os.path.join(work, "kubemoe-eval.json")
    proc = subprocess.run([KUBEMOE, "eval", "--model", MODEL, "--text", HELDOUT, "--devices",
                           str(DEVICES), "--policies", "contiguous", "--max-documents",
                           str(DOCUMENTS), "--json", out],
                          capture_output=True, text=True, timeout=900)
    check("kubemoe eval exits 0", proc.returncode == 0, proc.stderr)
    print(proc.stdout, flush=True)
    with open(out) as f:
        return {r["device_limit"]: r for r in json.load(f)["results"]}


def sample_ll(sample):
    """lm-eval's log-likelihood of one document (the rolling task's per-doc sum)."""
    resps = sample["filtered_resps"]
    value = resps[0] if isinstance(resps, list) else resps
    while isinstance(value, list):
        value = value[0]
    return float(value)


def compare(name, samples, expected_nll, docs):
    check(f"{name}: lm-eval scored every document", len(samples) == len(docs), len(samples))
    total = 0.0
    worst = 0.0
    for s in samples:
        total += sample_ll(s)
    rel = abs(-total - expected_nll) / expected_nll
    check(f"{name}: lm-eval's total log-likelihood is the engine's", rel < REL_TOL,
          f"lm-eval {-total:.6f} vs kubemoe eval {expected_nll:.6f} (rel {rel:.2e})")
    return -total, rel


def main():
    if not os.path.exists(LM_EVAL):
        print(f"FAIL: lm-eval is not installed at {LM_EVAL}; run scripts/setup.sh "
              "(it creates .venv-lm-eval from tools/requirements-lm-eval.txt)", flush=True)
        return 1
    with open(HELDOUT) as f:
        docs = [json.loads(l)["text"] for l in f if l.strip()][:DOCUMENTS]
    with tempfile.TemporaryDirectory(prefix="kubemoe-lm-eval-") as work:
        engine = kubemoe_eval(work)
        faithful, limited = engine[0], engine[1]
        words = sum(len(re.split(r"\s+", d)) for d in docs)
        for name, device_limit, expected in (("faithful", 0, faithful), ("deviceLimit 1", 1, limited)):
            cluster = Cluster(work, name.replace(" ", "-"), device_limit)
            try:
                up = cluster.wait_ready()
                check(f"{name}: cluster ready", up, "".join(cluster.lines)[-3000:])
                if not up:
                    continue
                metrics, samples = run_lm_eval(work, name.replace(" ", "-"), cluster.port)
                if samples is None:
                    continue
                nll, rel = compare(name, samples, expected["nll_sum"], docs)
                # lm-eval's word perplexity is exp(-sum ll / words) with its own word count.
                wp = metrics.get("word_perplexity,none")
                check(f"{name}: word perplexity", wp is not None and
                      abs(math.log(wp) - nll / words) < 1e-9 * max(1.0, nll / words), (wp, nll, words))
                check(f"{name}: token perplexity from lm-eval matches kubemoe eval",
                      abs(math.exp(nll / expected["scored_tokens"]) - expected["perplexity"]) <
                      REL_TOL * expected["perplexity"] * 10,
                      (math.exp(nll / expected["scored_tokens"]), expected["perplexity"]))
                print(f"{name}: engine perplexity {expected['perplexity']:.4f}, through lm-eval "
                      f"{math.exp(nll / expected['scored_tokens']):.4f} (total ll rel diff {rel:.2e})",
                      flush=True)
            finally:
                cluster.stop()
        check("deviceLimit 1 costs perplexity on this model", limited["perplexity"] > faithful["perplexity"],
              (limited["perplexity"], faithful["perplexity"]))
    print(f"lm_eval_test: {results['passed']} passed, {results['failed']} failed", flush=True)
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
