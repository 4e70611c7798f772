#!/usr/bin/env python3
"""Writes the safetensors fixtures in tests/data/safetensors/ with the Python `safetensors` package.

The C++ reader is tested against these files, so it is checked against a writer we did not write.
Values follow simple formulas that tests/safetensors_test.cc and tests/checkpoint_test.cc recompute
on their own; change both sides together. Run from anywhere:

    .venv/bin/python tools/make_safetensors_fixtures.py
"""

import json
import pathlib
import shutil

import numpy as np
from huggingface_hub import split_state_dict_into_shards_factory
from safetensors import serialize_file
from safetensors.numpy import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "safetensors"

# Small enough that the sharded checkpoint below needs several shards.
SHARD_BYTES = 200


def ramp(n):
    """(i - 5) / 3 in f32: most values are not exact in bf16/f16, so rounding is exercised."""
    return (np.arange(n, dtype=np.float32) - np.float32(5)) / np.float32(3)


def to_bf16_bits(values):
    """f32 -> bf16 bit patterns, rounding to nearest even (no NaNs in these fixtures)."""
    bits = values.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2")


def bf16_entry(values, shape):
    return {"dtype": "bfloat16", "shape": list(shape), "data": to_bf16_bits(values).tobytes()}


def write_single_dtype_files():
    save_file(
        {
            "weight": ramp(12).reshape(3, 4),
            "bias": np.arange(4, dtype=np.float32) * np.float32(0.5) - np.float32(1),
            "scalar": np.array(2.5, dtype=np.float32),
            "empty": np.zeros((0, 3), dtype=np.float32),
        },
        str(OUT / "f32.safetensors"),
    )
    serialize_file(
        {
            "weight": bf16_entry(ramp(12), (3, 4)),
            # (i - 8) * 1234.567: large magnitudes, where bf16 keeps only 3 significant digits.
            "wide": bf16_entry((np.arange(16, dtype=np.float32) - np.float32(8)) * np.float32(1234.567), (16,)),
        },
        str(OUT / "bf16.safetensors"),
        metadata=None,
    )
    save_file(
        {
            "weight": ramp(12).reshape(3, 4).astype(np.float16),
            "wide": ((np.arange(16, dtype=np.float32) - np.float32(8)) * np.float32(1234.567)).astype(np.float16),
            # i * 1e-6: f16 subnormals.
            "tiny": (np.arange(4, dtype=np.float32) * np.float32(1e-6)).astype(np.float16),
        },
        str(OUT / "f16.safetensors"),
    )


def write_metadata_and_unsupported_files():
    # Mixed dtypes plus __metadata__; the package orders the data by alignment, not by name.
    serialize_file(
        {
            "a": {"dtype": "float32", "shape": [2, 2], "data": ramp(4).astype("<f4").tobytes()},
            "b": bf16_entry(ramp(3), (3,)),
            "c": {"dtype": "float16", "shape": [3], "data": ramp(3).astype("<f2").tobytes()},
        },
        str(OUT / "with_metadata.safetensors"),
        metadata={"format": "pt", "producer": "make_safetensors_fixtures.py"},
    )
    # A valid file kubemoe cannot read: I64 is not a weight dtype it supports.
    save_file({"ids": np.arange(3, dtype=np.int64)}, str(OUT / "i64.safetensors"))


def sharded_state_dict():
    """Tensor t (in this order) is t + i / 16, i the flat element index: exact in f32."""
    names = []
    for layer in range(2):
        for expert in range(4):
            for proj in ("gate_proj", "up_proj", "down_proj"):
                names.append(f"model.layers.{layer}.mlp.experts.{expert}.{proj}.weight")
        if layer == 0:
            names.append("lm_head.weight")  # 256 bytes > SHARD_BYTES: gets a shard of its own
    state = {}
    for t, name in enumerate(names):
        shape = (8, 8) if name == "lm_head.weight" else (2, 3)
        n = int(np.prod(shape))
        state[name] = (np.float32(t) + np.arange(n, dtype=np.float32) / np.float32(16)).reshape(shape)
    return state


def write_sharded_checkpoint():
    """Shards split and named by huggingface_hub as transformers' save_pretrained does."""
    directory = OUT / "sharded"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    state = sharded_state_dict()
    split = split_state_dict_into_shards_factory(
        state,
        get_storage_size=lambda a: a.nbytes,
        filename_pattern="model{suffix}.safetensors",
        max_shard_size=SHARD_BYTES,
    )
    assert split.is_sharded
    for filename, names in split.filename_to_tensors.items():
        save_file({n: state[n] for n in names}, str(directory / filename), metadata={"format": "pt"})
    index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    write_single_dtype_files()
    write_metadata_and_unsupported_files()
    write_sharded_checkpoint()
    for path in sorted(OUT.rglob("*")):
        if path.is_file():
            print(f"{path.relative_to(OUT)}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
