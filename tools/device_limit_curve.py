#!/usr/bin/env python3
"""The deviceLimit quality curve: `kubemoe eval` on each trained tiny model (tests/data/trained/),
on D = 4 and 8 devices with contiguous and loadBalanced placements, every M = 1..D; writes the
results (JSON), a Markdown table and a plot (PNG) for docs/device-limit-quality.md.

Usage (matplotlib from the fixture venv, tools/requirements-fixtures.txt):
  .venv-fixtures/bin/python tools/device_limit_curve.py --kubemoe build/kubemoe \
      [--out docs/device-limit-quality]
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
MODELS = ["tiny_group_limited", "tiny_greedy"]
DEVICES = [4, 8]
POLICIES = ["contiguous", "loadBalanced"]


def run_eval(kubemoe, model, out_dir):
    model_dir = REPO / "tests" / "data" / "trained" / model
    out = out_dir / f"{model}.json"
    started = time.time()
    subprocess.run([kubemoe, "eval", "--model", str(model_dir), "--text", str(model_dir / "heldout.jsonl"),
                    "--devices", *map(str, DEVICES), "--policies", *POLICIES, "--json", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    data = json.loads(out.read_text())
    data["seconds"] = round(time.time() - started, 1)
    data["model"] = str(model_dir.relative_to(REPO))
    data["text"] = str((model_dir / "heldout.jsonl").relative_to(REPO))
    out.write_text(json.dumps(data, indent=1) + "\n")
    return data


def table(model, data):
    rows = data["results"]
    faithful = {(r["placement"], r["devices"]): r for r in rows if r["device_limit"] == 0}
    lines = [f"**{model}** ({data['topk_method']}, {data['routed_experts']} experts, top-{data['top_k']}"
             + (f", {data['n_group']} groups, topk_group {data['topk_group']}" if data["n_group"] > 1 else "")
             + f"; {data['documents']} held-out documents, {rows[0]['scored_tokens']} scored tokens)",
             "",
             "| placement | D | M | perplexity | vs faithful | divergent routings | tokens diverging | "
             "mean KL (nats) | destinations / token | dispatch bytes / token |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        base = faithful[(r["placement"], r["devices"])]
        m = "faithful" if r["device_limit"] == 0 else str(r["device_limit"])
        lines.append(
            f"| {r['placement']} | {r['devices']} | {m} | {r['perplexity']:.4f} | "
            f"{(r['perplexity'] / base['perplexity'] - 1) * 100:+.2f}% | {r['divergent_fraction'] * 100:.1f}% | "
            f"{r['tokens_divergent_fraction'] * 100:.1f}% | {r['mean_kl']:.5f} | "
            f"{r['destinations_per_token']:.2f} | {r['dispatch_bytes_per_token']:.0f} |")
    return "\n".join(lines)


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    colors = {"tiny_group_limited": "tab:blue", "tiny_greedy": "tab:red"}
    styles = {"contiguous": "-", "loadBalanced": "--"}
    markers = {4: "o", 8: "s"}
    for model, data in results.items():
        rows = data["results"]
        for policy in POLICIES:
            for d in DEVICES:
                sel = sorted((r for r in rows if r["placement"] == policy and r["devices"] == d),
                             key=lambda r: r["device_limit"])
                base = next(r for r in sel if r["device_limit"] == 0)
                lim = [r for r in sel if r["device_limit"] > 0]
                ms = [r["device_limit"] for r in lim]
                kw = dict(color=colors[model], linestyle=styles[policy], marker=markers[d],
                          label=f"{model.removeprefix('tiny_')}, {policy}, D={d}")
                axes[0].plot(ms, [(r["perplexity"] / base["perplexity"] - 1) * 100 for r in lim], **kw)
                axes[1].plot(ms, [max(r["mean_kl"], 1e-7) for r in lim], **kw)
                axes[2].plot(ms, [r["dispatch_bytes_per_token"] for r in lim], **kw)
    axes[0].set_ylabel("held-out perplexity vs faithful (%)")
    axes[1].set_ylabel("mean KL(faithful || limited), nats (exact 0 drawn at 1e-7)")
    axes[1].set_yscale("log")
    axes[2].set_ylabel("dispatch bytes per token (bf16, both ways)")
    for ax in axes:
        ax.set_xlabel("deviceLimit M")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Serving-time device-limited routing on trained tiny DeepSeek-V2 models "
                 "(kubemoe eval, held-out Python stdlib text)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kubemoe", default=str(REPO / "build" / "kubemoe"))
    ap.add_argument("--out", type=pathlib.Path, default=REPO / "docs" / "device-limit-quality")
    ap.add_argument("--plot-only", action="store_true", help="redraw from the JSON already in --out")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.plot_only:
        results = {m: json.loads((args.out / f"{m}.json").read_text()) for m in MODELS}
    else:
        results = {m: run_eval(args.kubemoe, m, args.out) for m in MODELS}
    md = "\n\n".join(table(m, d) for m, d in results.items()) + "\n"
    (args.out / "table.md").write_text(md)
    plot(results, args.out / "curve.png")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
