#!/usr/bin/env python3
"""One DeepSeek-V2 MoE layer in PyTorch on a GPU: the yardstick for kubemoe's CUDA experts.

The layer (bf16, random weights): softmax gate over 160 routed experts with group-limited top-6
(8 groups, the best 3 kept; group score = its best expert score), routed_scaling_factor 16, the
tokens sorted by expert, SwiGLU experts (hidden 5120, intermediate 1536; gate and up stacked
per expert once at setup), the weighted combine back to token order in f32, plus the 2 shared
experts as one SwiGLU MLP of intermediate 3072. A per-expert logit bias ~ N(0, 0.5) skews the
routing the way trained gates do (some experts hot, some cold), as the C++ bench cases do.

Two forms of the routed experts, each timed alone ("experts": the FFN on already-sorted rows)
and inside the whole layer ("layer"):
  loop     counts copied to the host once, then a Python loop of matmuls over experts with rows
  grouped  torch._grouped_mm with device offsets (no host sync); reported as unavailable when
           this torch lacks it or it refuses the inputs
and "dense": one torch.mm with the experts' FLOPs ([rows x 5120] x [5120 x 4608]), the ceiling
the C++ grouped FFN is compared with. Times are CUDA-event medians over --repeats after --warmup.
Experts' rates: TFLOP/s = 6 x rows x hidden x intermediate / time; GB/s counts the used experts'
weights, the rows in and the rows out once each.

Prints a Markdown table; writes all numbers as JSON to --out. Needs only torch and a CUDA GPU.
    python3 bench/moe_layer_torch.py --tokens 128,1024,4096 --out /tmp/moe_layer_torch.json
"""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", default="128,1024,4096", help="comma-separated token counts")
    p.add_argument("--experts", type=int, default=160)
    p.add_argument("--hidden", type=int, default=5120)
    p.add_argument("--intermediate", type=int, default=1536, help="per routed expert")
    p.add_argument("--shared-experts", type=int, default=2)
    p.add_argument("--top-k", type=int, default=6)
    p.add_argument("--groups", type=int, default=8)
    p.add_argument("--topk-groups", type=int, default=3)
    p.add_argument("--scaling", type=float, default=16.0, help="routed_scaling_factor")
    p.add_argument("--bias-sigma", type=float, default=0.5, help="per-expert logit bias std")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="JSON output path")
    return p.parse_args()


def time_ms(fn, warmup, repeats):
    """Median milliseconds of fn() between CUDA events, after warm-up."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times), min(times), max(times)


class Layer:
    def __init__(self, a, dev):
        g = torch.Generator(device=dev).manual_seed(a.seed)
        h, i, e = a.hidden, a.intermediate, a.experts

        def uniform(shape, fan_in):
            # U(-3/sqrt(fan_in), 3/sqrt(fan_in)): pre-activations and outputs of order 1.
            w = torch.empty(shape, device=dev, dtype=torch.bfloat16)
            return w.uniform_(-3.0 / fan_in ** 0.5, 3.0 / fan_in ** 0.5, generator=g)

        self.a = a
        self.w_gate = uniform((e, h), h) / 3.0  # logits of std about 1
        self.bias = torch.randn(e, device=dev, generator=g) * a.bias_sigma
        self.w_gate_up = uniform((e, 2 * i, h), h)  # per expert: gate rows, then up rows
        self.w_down = uniform((e, h, i), i)
        si = a.shared_experts * i
        # --shared-experts 0 times the routed experts alone, as kubemoe's moe_layer cases do.
        self.s_gate_up = uniform((2 * si, h), h) if si > 0 else None
        self.s_down = uniform((h, si), si) if si > 0 else None

    def route(self, x):
        a = self.a
        t = x.shape[0]
        logits = F.linear(x, self.w_gate).float() + self.bias
        scores = logits.softmax(dim=-1)
        group_scores = scores.view(t, a.groups, -1).max(dim=-1).values
        keep = group_scores.topk(a.topk_groups, dim=-1).indices
        mask = torch.zeros_like(group_scores).scatter_(1, keep, 1.0)
        mask = mask.unsqueeze(-1).expand(t, a.groups, a.experts // a.groups).reshape(t, -1)
        weights, ids = scores.masked_fill(mask == 0, 0.0).topk(a.top_k, dim=-1)
        return ids, weights * a.scaling

    def dispatch(self, x, ids):
        flat = ids.reshape(-1)
        order = flat.argsort(stable=True)
        token = order // self.a.top_k
        counts = torch.bincount(flat, minlength=self.a.experts)
        return x.index_select(0, token), token, order, counts

    def experts_loop(self, xs, counts):
        i = self.a.intermediate
        out = torch.empty(xs.shape[0], self.a.hidden, device=xs.device, dtype=xs.dtype)
        start = 0
        for e, n in enumerate(counts.tolist()):
            if n == 0:
                continue
            rows = xs[start:start + n]
            gu = rows @ self.w_gate_up[e].t()
            out[start:start + n] = (F.silu(gu[:, :i]) * gu[:, i:]) @ self.w_down[e].t()
            start += n
        return out

    def experts_grouped(self, xs, counts):
        i = self.a.intermediate
        offs = counts.cumsum(0).to(torch.int32)
        gu = torch._grouped_mm(xs, self.w_gate_up.transpose(-2, -1), offs=offs)
        act = F.silu(gu[:, :i]) * gu[:, i:]
        return torch._grouped_mm(act, self.w_down.transpose(-2, -1), offs=offs)

    def forward(self, x, experts):
        ids, weights = self.route(x)
        xs, token, order, counts = self.dispatch(x, ids)
        ys = experts(xs, counts).float() * weights.reshape(-1)[order].unsqueeze(-1)
        out = torch.zeros(x.shape, device=x.device, dtype=torch.float32).index_add_(0, token, ys)
        if self.s_gate_up is not None:
            si = self.a.shared_experts * self.a.intermediate
            gu = F.linear(x, self.s_gate_up)
            out += F.linear(F.silu(gu[:, :si]) * gu[:, si:], self.s_down).float()
        return out.to(x.dtype)


def rel_l2(got, want):
    got, want = got.double(), want.double()
    return ((got - want).norm() / want.norm()).item()


def main():
    a = parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("moe_layer_torch.py needs a CUDA GPU")
    dev = torch.device("cuda")
    torch.manual_seed(a.seed)
    layer = Layer(a, dev)
    h, i = a.hidden, a.intermediate
    grouped_error = None
    if not hasattr(torch, "_grouped_mm"):
        grouped_error = f"torch {torch.__version__} has no torch._grouped_mm"
    results = []
    for tokens in [int(t) for t in a.tokens.split(",")]:
        x = torch.empty(tokens, h, device=dev, dtype=torch.bfloat16).uniform_(-1.0, 1.0)
        ids, _ = layer.route(x)
        xs, _, _, counts = layer.dispatch(x, ids)
        rows = xs.shape[0]
        used = int((counts > 0).sum().item())
        flops = 6.0 * rows * h * i
        bytes_floor = 2.0 * (used * 3.0 * h * i + 2.0 * rows * h)
        base = {"tokens": tokens, "rows": rows, "experts_used": used,
                "max_rows_per_expert": int(counts.max().item()), "flops": flops,
                "bytes_floor": bytes_floor}

        def record(form, experts_ms, layer_ms=None, extra=None):
            row = dict(base, form=form, experts_ms=experts_ms[0], experts_ms_min=experts_ms[1],
                       experts_ms_max=experts_ms[2], layer_ms=layer_ms[0] if layer_ms else None,
                       tflops=flops / experts_ms[0] / 1e9, gbps=bytes_floor / experts_ms[0] / 1e6)
            row.update(extra or {})
            results.append(row)

        with torch.no_grad():
            want = layer.experts_loop(xs, counts)
            record("loop", time_ms(lambda: layer.experts_loop(xs, counts), a.warmup, a.repeats),
                   time_ms(lambda: layer.forward(x, layer.experts_loop), a.warmup, a.repeats))
            if grouped_error is None:
                try:
                    err = rel_l2(layer.experts_grouped(xs, counts), want)
                    record("grouped",
                           time_ms(lambda: layer.experts_grouped(xs, counts), a.warmup, a.repeats),
                           time_ms(lambda: layer.forward(x, layer.experts_grouped), a.warmup,
                                   a.repeats),
                           {"rel_l2_vs_loop": err})
                except Exception as e:  # noqa: BLE001 - any refusal is reported, not fatal
                    grouped_error = f"torch._grouped_mm failed: {type(e).__name__}: {e}"
            dense_x = torch.empty(rows, h, device=dev, dtype=torch.bfloat16).uniform_(-1.0, 1.0)
            dense_w = torch.empty(3 * i, h, device=dev, dtype=torch.bfloat16).uniform_(-0.04, 0.04)
            record("dense", time_ms(lambda: dense_x @ dense_w.t(), a.warmup, a.repeats), None,
                   {"bytes_floor": 2.0 * (rows * h + 3 * i * h + rows * 3 * i)})
            results[-1]["gbps"] = results[-1]["bytes_floor"] / results[-1]["experts_ms"] / 1e6
        del x, xs, counts, ids

    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "cuda": torch.version.cuda, "config": vars(a), "grouped_mm_error": grouped_error,
              "results": results}

    print(f"{report['device']}, torch {report['torch']}, CUDA {report['cuda']}")
    dense = {r["tokens"]: r["tflops"] for r in results if r["form"] == "dense"}
    for r in results:
        r["vs_dense"] = r["tflops"] / dense[r["tokens"]]
    with open(a.out, "w") as f:
        json.dump(report, f, indent=2)
    print("| tokens | rows | experts used | form | experts ms | TFLOP/s | vs dense | GB/s "
          "| layer ms |")
    print("|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in results:
        layer_ms = f"{r['layer_ms']:.3f}" if r["layer_ms"] is not None else "-"
        print(f"| {r['tokens']} | {r['rows']} | {r['experts_used']} | {r['form']} | "
              f"{r['experts_ms']:.3f} | {r['tflops']:.1f} | {r['vs_dense']:.2f} | "
              f"{r['gbps']:.0f} | {layer_ms} |")
    if grouped_error:
        print(f"grouped form unavailable: {grouped_error}")
    for r in results:
        if "rel_l2_vs_loop" in r:
            print(f"t{r['tokens']}: grouped vs loop relative L2 {r['rel_l2_vs_loop']:.2e}")


if __name__ == "__main__":
    main()
