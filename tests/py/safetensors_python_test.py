"""Checkpoints written by `kubemoe make-model` must load in the Python `safetensors` package.

Run by ctest (test `safetensors_python`) with KUBEMOE_BIN pointing at the CLI. The expected tensor
names and shapes are derived here from config.json following the Hugging Face DeepSeek-V2
modelling code, independently of the C++ code.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from safetensors import deserialize, safe_open

from deepseek_v2_tensors import expected_tensors
from checks import check, results

KUBEMOE = os.environ["KUBEMOE_BIN"]



def make_model(out_dir, *args):
    subprocess.run([KUBEMOE, "make-model", "--preset", "tiny", "--out", out_dir, *args],
                   check=True, capture_output=True, text=True)
    with open(os.path.join(out_dir, "config.json")) as f:
        return json.load(f)


def load_numpy(path):
    with safe_open(path, framework="numpy") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def load_bf16(path):
    with open(path, "rb") as f:
        entries = deserialize(f.read())
    out = {}
    for name, t in entries:
        check(f"{name} dtype", t["dtype"] in ("bf16", "BF16", "bfloat16"), t["dtype"])
        bits = np.frombuffer(t["data"], dtype=np.uint16).astype(np.uint32) << 16
        out[name] = bits.view(np.float32).reshape(t["shape"])
    return out


with tempfile.TemporaryDirectory() as tmp:
    f32_dir, bf16_dir, sharded_dir = (os.path.join(tmp, d) for d in ("f32", "bf16", "sharded"))
    config = make_model(f32_dir, "--seed", "5")
    expected = expected_tensors(config)

    tensors, metadata = load_numpy(os.path.join(f32_dir, "model.safetensors"))
    check("metadata format", metadata.get("format") == "pt", metadata)
    check("tensor names", set(tensors) == set(expected),
          sorted(set(tensors) ^ set(expected))[:5])
    for name, shape in expected.items():
        if name in tensors:
            check(f"{name} shape", list(tensors[name].shape) == shape, (tensors[name].shape, shape))
            check(f"{name} dtype", tensors[name].dtype == np.float32, tensors[name].dtype)
    weights = np.concatenate([t.ravel() for n, t in tensors.items() if "norm" not in n])
    norms = np.concatenate([t.ravel() for n, t in tensors.items() if "norm" in n])
    std = config["initializer_range"]
    check("weights ~ N(0, initializer_range)",
          abs(weights.mean()) < 0.05 * std and abs(weights.std() - std) < 0.02 * std,
          (weights.mean(), weights.std()))
    check("norms ~ 1", abs(norms.mean() - 1.0) < 0.01, norms.mean())

    # bf16 with the same seed holds the f32 values rounded to bf16 (round to nearest even).
    make_model(bf16_dir, "--seed", "5", "--dtype", "bf16")
    bf16 = load_bf16(os.path.join(bf16_dir, "model.safetensors"))
    check("bf16 names", set(bf16) == set(expected))
    for name in ("model.layers.1.mlp.experts.3.up_proj.weight", "model.embed_tokens.weight"):
        bits = tensors[name].view(np.uint32).astype(np.uint64)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint32) << 16
        check(f"{name} bf16 rounding", np.array_equal(bf16[name].view(np.uint32), rounded))

    # A sharded checkpoint: the index covers every tensor once; values equal the single file's.
    make_model(sharded_dir, "--seed", "5", "--max-shard-mb", "0.25")
    with open(os.path.join(sharded_dir, "model.safetensors.index.json")) as f:
        index = json.load(f)
    shards = sorted(set(index["weight_map"].values()))
    check("several shards", len(shards) > 1, shards)
    check("index names", set(index["weight_map"]) == set(expected))
    total = 0
    for shard in shards:
        part, _ = load_numpy(os.path.join(sharded_dir, shard))
        for name, value in part.items():
            total += value.nbytes
            check(f"{name} in its shard", index["weight_map"].get(name) == shard)
            check(f"{name} value", np.array_equal(value, tensors[name]))
    check("total_size", index["metadata"]["total_size"] == total, (index["metadata"], total))

print(f"{results['passed']} passed, {results['failed']} failed")
sys.exit(1 if results["failed"] else 0)
