"""End-to-end checks of the `kubemoe` CLI (make-model, inspect), including bad input.

Run by ctest (test `cli`) with KUBEMOE_BIN pointing at the CLI.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

from deepseek_v2_tensors import parameter_count

KUBEMOE = os.environ["KUBEMOE_BIN"]
SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(SOURCE, "data", "configs")
results = {"passed": 0, "failed": 0}


def check(name, condition, detail=""):
    if condition:
        results["passed"] += 1
    else:
        results["failed"] += 1
        print(f"FAIL {name}: {detail}")


def run(*args):
    return subprocess.run([KUBEMOE, *args], capture_output=True, text=True, timeout=120)


def grouped(n):
    return f"{n:,}"


# The released DeepSeek-V2: ~236B total, ~21B activated, and the KV-cache comparisons.
v2 = run("inspect", os.path.join(CONFIGS, "deepseek-v2.json"), "--vs-deepseek-67b")
check("inspect v2 exit", v2.returncode == 0, v2.stderr)
with open(os.path.join(CONFIGS, "deepseek-v2.json")) as f:
    v2_config = json.load(f)
check("v2 total = sum of tensor sizes", grouped(parameter_count(v2_config)) in v2.stdout, v2.stdout)
check("v2 ~236B", "235.74B" in v2.stdout, v2.stdout)
check("v2 ~21B activated", "21.38B" in v2.stdout, v2.stdout)
check("v2 MLA elements", "(512 + 64) x 60 = 34,560" in v2.stdout, v2.stdout)
check("v2 MHA elements", "2 x 128 x 128 x 60 = 1,966,080" in v2.stdout, v2.stdout)
check("v2 98.24% smaller than MHA", "98.24% smaller" in v2.stdout, v2.stdout)
check("v2 vs 67B 93.34%", "93.34% smaller" in v2.stdout, v2.stdout)
check("config-only", "weights: none (config only)" in v2.stdout, v2.stdout)

lite = run("inspect", os.path.join(CONFIGS, "deepseek-v2-lite.json"))
check("lite ~15.7B", "15.71B" in lite.stdout, lite.stdout)

with tempfile.TemporaryDirectory() as tmp:
    tiny = os.path.join(tmp, "tiny")
    made = run("make-model", "--preset", "tiny", "--out", tiny, "--dtype", "bf16")
    check("make-model tiny", made.returncode == 0, made.stderr)
    out = run("inspect", tiny)
    check("inspect tiny", out.returncode == 0 and "all match the config" in out.stdout,
          out.stdout + out.stderr)
    check("inspect tiny bf16", re.search(r"BF16 x\d+", out.stdout) is not None, out.stdout)

    # A custom config through --config: no q_lora, tied embeddings, greedy routing.
    with open(os.path.join(tiny, "config.json")) as f:
        custom = json.load(f)
    custom.update({"q_lora_rank": None, "tie_word_embeddings": True, "topk_method": "greedy",
                   "n_group": 1, "topk_group": 1, "num_hidden_layers": 2})
    custom_path = os.path.join(tmp, "custom.json")
    with open(custom_path, "w") as f:
        json.dump(custom, f)
    custom_dir = os.path.join(tmp, "custom")
    made = run("make-model", "--config", custom_path, "--out", custom_dir, "--max-shard-mb", "0.1")
    check("make-model --config", made.returncode == 0, made.stderr)
    out = run("inspect", custom_dir)
    check("inspect custom sharded", out.returncode == 0 and "files," in out.stdout
          and "q_lora_rank null" in out.stdout, out.stdout + out.stderr)
    check("custom total", grouped(parameter_count(custom)) in out.stdout, out.stdout)

    # Bad input: clear errors, non-zero exit, nothing crashes.
    weights = os.path.join(tiny, "model.safetensors")
    with open(weights, "r+b") as f:
        f.truncate(os.path.getsize(weights) // 2)
    out = run("inspect", tiny)
    check("truncated checkpoint", out.returncode == 1 and "model.safetensors" in out.stderr,
          (out.returncode, out.stderr))

    mismatch = dict(custom, hidden_size=custom["hidden_size"] * 2)
    with open(os.path.join(custom_dir, "config.json"), "w") as f:
        json.dump(mismatch, f)
    out = run("inspect", custom_dir)
    check("shape mismatch", out.returncode == 1 and "shape" in out.stderr, (out.returncode, out.stderr))

    with open(os.path.join(tmp, "bad.json"), "w") as f:
        f.write('{"model_type": "deepseek_v2", "num_hidden_layers": "sixty"}')
    out = run("inspect", os.path.join(tmp, "bad.json"))
    check("bad field", out.returncode == 1 and "num_hidden_layers" in out.stderr, out.stderr)

    out = run("make-model", "--preset", "huge", "--out", os.path.join(tmp, "x"))
    check("unknown preset", out.returncode != 0 and "huge" in (out.stderr + out.stdout), out.stderr)
    out = run("make-model", "--out", os.path.join(tmp, "x"))
    check("preset or config required", out.returncode != 0 and "--preset" in out.stderr, out.stderr)
    small_vocab = dict(custom, vocab_size=10, bos_token_id=1, eos_token_id=2)
    with open(custom_path, "w") as f:
        json.dump(small_vocab, f)
    out = run("make-model", "--config", custom_path, "--out", os.path.join(tmp, "x"))
    check("vocab too small", out.returncode == 1 and "vocab_size" in out.stderr, out.stderr)

print(f"{results['passed']} passed, {results['failed']} failed")
sys.exit(1 if results["failed"] else 0)
