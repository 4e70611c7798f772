#!/usr/bin/env python3
"""Markdown tables for bench/RESULTS.md from bench/kernel_ops_gpu's JSON lines.

    python3 tools/gpu_results_table.py RUN.jsonl [--previous EARLIER.jsonl] [--torch TORCH.json]

For every case: median ms, GB/s and its ratio to the copy bandwidth of the same run; for the
grouped FFN and the MoE layer, TFLOP/s and the ratio to cuBLAS's dense GEMM of the same FLOPs
(dense_gemm/ffn_t<T>_*) in the same run; with --previous, the time ratio previous / this (above 1
is faster now); with --torch (bench/moe_layer_torch.py's JSON), PyTorch's time for the same token
count over ours.
"""
import argparse
import json
import re


def load(path):
    header, rows = None, {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            obj = json.loads(line)
            if "copy_gbps" in obj:
                header = obj
            else:
                rows[obj["case"]] = obj
    return header, rows


def tokens_of(name):
    m = re.search(r"/(?:[a-z_]+_)?t(\d+)_", name)
    return int(m.group(1)) if m else None


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("--previous")
    p.add_argument("--torch", help="moe_layer_torch.py JSON (routed-only parity run)")
    a = p.parse_args()
    header, rows = load(a.run)
    prev = load(a.previous)[1] if a.previous else {}
    dense = {tokens_of(n): r for n, r in rows.items() if n.startswith("dense_gemm/ffn_t")}
    torch_ms = {}
    if a.torch:
        data = json.load(open(a.torch))
        for r in data.get("results", data if isinstance(data, list) else []):
            if r.get("form") == "grouped":
                torch_ms[("grouped_ffn", r["tokens"])] = r.get("experts_ms")
                if r.get("layer_ms") is not None:
                    torch_ms[("moe_layer", r["tokens"])] = r["layer_ms"]
    copy = header["copy_gbps"]
    print(f"{header['device']}, device-to-device copy {copy:.0f} GB/s (read + write)\n")
    cols = ["case", "median ms", "GB/s", "of copy", "TFLOP/s", "of dense"]
    if prev:
        cols.append("previous / this")
    if torch_ms:
        cols.append("PyTorch grouped / this")
    print("| " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * (len(cols) - 1))
    for name in sorted(rows):
        r = rows[name]
        t = tokens_of(name)
        of_dense = ""
        if (name.startswith("grouped_ffn/") or name.startswith("moe_layer/")) and t in dense:
            of_dense = f"{r['tflops'] / dense[t]['tflops']:.2f}"
        cells = [name, f"{r['median_ms']:.4f}", f"{r['gbps']:.0f}", f"{r['gbps'] / copy:.2f}",
                 f"{r['tflops']:.1f}" if r["tflops"] >= 0.05 else "-", of_dense]
        if prev:
            cells.append(f"{prev[name]['median_ms'] / r['median_ms']:.2f}" if name in prev else "new")
        if torch_ms:
            op = name.split("/")[0]
            theirs = torch_ms.get((op, t)) if op in ("grouped_ffn", "moe_layer") else None
            cells.append(f"{theirs / r['median_ms']:.2f}" if theirs else "")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
