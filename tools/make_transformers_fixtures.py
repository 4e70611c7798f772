#!/usr/bin/env python3
"""Builds tiny random DeepSeek-V2 checkpoints with Hugging Face transformers' own
DeepseekV2ForCausalLM and records what transformers computes on them.

The C++ inference engine is tested against these files: same weights, same
prompts, and it must reproduce the logits, the greedy continuations and the
expert routing. Every config stays inside the subset where transformers agrees
with the original DeepSeek-V2 modelling code (see tools/README-fixtures.md).

Run with the fixture venv (tools/requirements-fixtures.txt):
  HF_HUB_OFFLINE=1 .venv-fixtures/bin/python tools/make_transformers_fixtures.py
Output: tests/data/transformers/<name>/{config.json, generation_config.json,
model.safetensors, reference.json, reference.safetensors}.
"""

import argparse
import json
import math
import os
import pathlib
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy  # noqa: E402
import safetensors  # noqa: E402
import safetensors.torch  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import DeepseekV2Config, DeepseekV2ForCausalLM  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
OUT_ROOT = REPO / "tests" / "data" / "transformers"
SEED = 20250805
NEW_TOKENS = 16
# Special ids of every fixture config; prompts never contain them.
BOS, EOS = 1, 2
FIRST_ORDINARY_ID = 3
# Decisions closer than these would make an independent f32 implementation
# flip a choice by rounding alone, so the generator rejects such prompts.
MIN_TOP1_MARGIN = 1e-3
MIN_ROUTER_GAP = 1e-4
MAX_FILE_BYTES = 1 << 20

# Shared shape of all fixtures: 4 heads, MLA dims 16/8/16.
BASE = dict(
    num_attention_heads=4,
    qk_nope_head_dim=16,
    qk_rope_head_dim=8,
    v_head_dim=16,
    hidden_act="silu",
    rms_norm_eps=1e-6,
    rope_theta=10000.0,
    max_position_embeddings=512,
    initializer_range=0.15,
    bos_token_id=BOS,
    eos_token_id=EOS,
    aux_loss_alpha=0.001,
    # Not read by transformers 4.54 (it has no moe_layer_freq and only softmax
    # scoring); written so config.json states the original code's meaning.
    moe_layer_freq=1,
    scoring_func="softmax",
    norm_topk_prob=False,
    attention_bias=False,
    rope_scaling=None,
)

FIXTURES = [
    dict(
        name="greedy_qproj",
        covers="greedy top-k, plain q_proj (q_lora_rank null), one dense layer then MoE "
        "(first_k_dense_replace 1), one shared expert, untied lm_head, f32",
        dtype="float32",
        prompt_lengths=(5, 9, 13),
        config=dict(
            vocab_size=256, hidden_size=48, intermediate_size=96, num_hidden_layers=3,
            q_lora_rank=None, kv_lora_rank=16, n_routed_experts=8, num_experts_per_tok=2,
            moe_intermediate_size=16, n_shared_experts=1, first_k_dense_replace=1,
            topk_method="greedy", n_group=1, topk_group=1, routed_scaling_factor=1.0,
            tie_word_embeddings=False,
        ),
    ),
    dict(
        name="group_limited_qlora",
        covers="group_limited_greedy (n_group 4, topk_group 2, group score = max), "
        "q_lora_rank set (q_a_proj/q_a_layernorm/q_b_proj), routed_scaling_factor 2.5, f32",
        dtype="float32",
        prompt_lengths=(5, 9, 13),
        config=dict(
            vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
            q_lora_rank=24, kv_lora_rank=32, n_routed_experts=16, num_experts_per_tok=3,
            moe_intermediate_size=16, n_shared_experts=1, first_k_dense_replace=1,
            topk_method="group_limited_greedy", n_group=4, topk_group=2,
            routed_scaling_factor=2.5, tie_word_embeddings=False,
        ),
    ),
    dict(
        name="rms_eps_1e5_qlora",
        covers="rms_norm_eps 1e-5 (the decoder norms use it; MLA's q_a_layernorm and "
        "kv_a_layernorm keep eps 1e-6, as in the original code and transformers), q_lora_rank "
        "set, group_limited_greedy, f32",
        dtype="float32",
        prompt_lengths=(5, 9, 13),
        config=dict(base="group_limited_qlora", rms_norm_eps=1e-5),
    ),
    dict(
        name="dense2_shared2_tied",
        covers="first_k_dense_replace 2 with moe_layer_freq 1 (layers 0-1 dense, 2-3 MoE), "
        "n_shared_experts 2 (shared intermediate 2*moe_intermediate_size), tied embeddings "
        "(no lm_head.weight in the file), f32",
        dtype="float32",
        prompt_lengths=(5, 9, 13),
        config=dict(
            vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
            q_lora_rank=None, kv_lora_rank=16, n_routed_experts=8, num_experts_per_tok=2,
            moe_intermediate_size=16, n_shared_experts=2, first_k_dense_replace=2,
            topk_method="greedy", n_group=1, topk_group=1, routed_scaling_factor=1.0,
            tie_word_embeddings=True,
        ),
    ),
    dict(
        name="group_limited_qlora_bf16",
        covers="same config and seed as group_limited_qlora, weights rounded to bf16 and "
        "saved as BF16; reference computed in f32 from the bf16-rounded weights",
        dtype="bfloat16",
        prompt_lengths=(5, 9, 13),
        config="group_limited_qlora",
    ),
    dict(
        name="yarn_all_moe",
        covers="YaRN rope_scaling (factor 4, original_max_position_embeddings 128, "
        "beta_fast 32, beta_slow 1, mscale 1, mscale_all_dim 0: the subset where transformers "
        "4.54 and the original code agree), every layer MoE (first_k_dense_replace 0), "
        "q_lora_rank set, 12 routed experts, longer third prompt, f32",
        dtype="float32",
        prompt_lengths=(5, 9, 33),
        config=dict(
            vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            q_lora_rank=16, kv_lora_rank=16, n_routed_experts=12, num_experts_per_tok=2,
            moe_intermediate_size=24, n_shared_experts=1, first_k_dense_replace=0,
            topk_method="greedy", n_group=1, topk_group=1, routed_scaling_factor=1.0,
            tie_word_embeddings=False, max_position_embeddings=512,
            # transformers 4.54 replaces factor by max_position_embeddings /
            # original_max_position_embeddings, so the two must agree (512/128 = 4).
            rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128,
                          "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0,
                          "mscale_all_dim": 0.0},
        ),
    ),
]


def fixture_config(fixture):
    # A config is a dict, another fixture's name, or dict(base=name, **changes).
    spec = fixture["config"]
    if isinstance(spec, str):
        spec = dict(base=spec)
    if "base" in spec:
        changes = {k: v for k, v in spec.items() if k != "base"}
        spec = dict(next(f["config"] for f in FIXTURES if f["name"] == spec["base"]), **changes)
    kwargs = dict(BASE)
    kwargs.update(spec)
    if kwargs["rope_scaling"] is not None:
        kwargs["rope_scaling"] = dict(kwargs["rope_scaling"])
    config = DeepseekV2Config(**kwargs)
    config._attn_implementation = "eager"
    return config


def moe_layers(config):
    # transformers 4.54: a layer is MoE iff layer >= first_k_dense_replace.
    # The original code also requires layer % moe_layer_freq == 0; with
    # moe_layer_freq 1 both say the same.
    return [i for i in range(config.num_hidden_layers) if i >= config.first_k_dense_replace]


def build_model(config, seed, round_to_bf16):
    torch.manual_seed(seed)
    model = DeepseekV2ForCausalLM(config)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            # RMSNorm weights start at 1; perturb them so a norm applied with the
            # wrong weight (or none) shows up in the logits.
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                param.copy_(1.0 + 0.2 * torch.randn(param.shape, generator=gen))
            # Larger router logits make routing depend strongly on the token.
            if name.endswith("mlp.gate.weight"):
                param.mul_(2.0)
        if round_to_bf16:
            for param in model.parameters():
                param.copy_(param.to(torch.bfloat16).to(torch.float32))
    model.eval()
    return model


def check_rope(model, config):
    """Checks transformers uses the RoPE tables of the original DeepSeek-V2 code,
    so the engine can follow the original."""
    rotary = model.model.rotary_emb
    inv_freq, cos_sin_scale = check_rope_tables(config)
    torch.testing.assert_close(rotary.inv_freq.float(), torch.tensor(inv_freq), rtol=1e-6, atol=0)
    assert abs(rotary.attention_scaling - cos_sin_scale) < 1e-12, (rotary.attention_scaling,
                                                                     cos_sin_scale)
    expected_scale = (config.qk_nope_head_dim + config.qk_rope_head_dim) ** -0.5
    for layer in model.model.layers:
        assert abs(layer.self_attn.scaling - expected_scale) < 1e-12
    return inv_freq, cos_sin_scale


def check_rope_tables(config):
    """inv_freq and the cos/sin factor as the original DeepSeek-V2 code computes them
    (float32 like the original; YaRN per DeepseekV2YarnRotaryEmbedding)."""
    dim = config.qk_rope_head_dim
    base = config.rope_theta
    exponents = torch.arange(0, dim, 2, dtype=torch.float32) / dim
    extra = 1.0 / (base ** exponents)
    rs = config.rope_scaling
    if rs is None:
        inv_freq, cos_sin_scale = extra, 1.0
    else:
        factor = rs["factor"]
        omax = rs.get("original_max_position_embeddings", 4096)
        beta_fast, beta_slow = rs.get("beta_fast", 32), rs.get("beta_slow", 1)
        mscale, mscale_all_dim = rs.get("mscale", 1), rs.get("mscale_all_dim", 0)

        def corr_dim(rot):
            return dim * math.log(omax / (rot * 2 * math.pi)) / (2 * math.log(base))

        low = max(math.floor(corr_dim(beta_fast)), 0)
        high = min(math.ceil(corr_dim(beta_slow)), dim - 1)
        if low == high:
            high += 0.001
        ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
        extra_mask = 1.0 - ramp
        inter = 1.0 / (factor * base ** exponents)
        inv_freq = inter * (1 - extra_mask) + extra * extra_mask

        def get_mscale(scale, m):
            return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

        cos_sin_scale = get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim)
        # The original multiplies the softmax scale by get_mscale(factor,
        # mscale_all_dim)^2 when mscale_all_dim is non-zero; transformers 4.54 never
        # does. Fixtures must keep it zero.
        assert not mscale_all_dim, "mscale_all_dim != 0 diverges from the original code"
    return inv_freq.tolist(), cos_sin_scale


class RoutingRecorder:
    """Forward hooks on every MoE gate; each call appends one row per token."""

    def __init__(self, model, layers):
        self.rows = {layer: [] for layer in layers}
        self.handles = []
        for layer in layers:
            gate = model.model.layers[layer].mlp.gate
            self.handles.append(gate.register_forward_hook(self._hook(layer)))

    def _hook(self, layer):
        def hook(module, inputs, output):
            topk_idx, topk_weight = output
            x = inputs[0].reshape(-1, inputs[0].shape[-1])
            # Same formula as the gate; kept so tests can check the scores too.
            probs = torch.nn.functional.linear(x.float(), module.weight.float()).softmax(-1)
            torch.testing.assert_close(
                torch.gather(probs, 1, topk_idx) * module.routed_scaling_factor, topk_weight)
            for t in range(x.shape[0]):
                # topk(sorted=False) order is unspecified: sort by weight, then id.
                order = sorted(range(topk_idx.shape[1]),
                               key=lambda j: (-float(topk_weight[t, j]), int(topk_idx[t, j])))
                self.rows[layer].append((
                    [int(topk_idx[t, j]) for j in order],
                    torch.stack([topk_weight[t, j] for j in order]).clone(),
                    probs[t].clone(),
                ))
        return hook

    def reset(self):
        for rows in self.rows.values():
            rows.clear()

    def remove(self):
        for handle in self.handles:
            handle.remove()


def router_gap(config, probs):
    """Smallest gap between a chosen and a rejected score (and, for group-limited
    routing, between a kept and a dropped group score) for one token."""
    k = config.num_experts_per_tok
    gaps = []
    eligible = probs.clone()
    if config.topk_method == "group_limited_greedy":
        groups = probs.view(config.n_group, -1).max(-1).values.sort(descending=True).values
        gaps.append(float(groups[config.topk_group - 1] - groups[config.topk_group]))
        kept = probs.view(config.n_group, -1).max(-1).values.topk(config.topk_group).indices
        mask = torch.zeros(config.n_group, dtype=torch.bool)
        mask[kept] = True
        eligible = probs.view(config.n_group, -1).masked_fill(~mask[:, None], 0.0).view(-1)
    ordered = eligible.sort(descending=True).values
    gaps.append(float(ordered[k - 1] - ordered[k]))
    return min(gaps)


def top1_margin(logits_row):
    top2 = logits_row.topk(2).values
    return float(top2[0] - top2[1])


@torch.no_grad()
def run_prompt(model, config, prompt, recorder):
    """Returns the reference data of one prompt and checks cached against uncached."""
    ids = torch.tensor([prompt], dtype=torch.long)
    layers = sorted(recorder.rows)

    # Uncached greedy loop; its first step is the prompt-only forward.
    recorder.reset()
    seq = list(prompt)
    loop_logits = []
    prompt_logits = None
    for step in range(NEW_TOKENS):
        recorder.reset()
        out = model(torch.tensor([seq]), use_cache=False)
        if step == 0:
            prompt_logits = out.logits[0].clone()
        last = out.logits[0, -1]
        loop_logits.append(last.clone())
        seq.append(int(last.argmax()))
    loop_tokens = seq[len(prompt):]
    # Routing of the last uncached forward covers prompt + first 15 generated tokens.
    loop_routing = {layer: list(recorder.rows[layer]) for layer in layers}

    recorder.reset()
    gen = model.generate(
        ids, do_sample=False, use_cache=True, max_new_tokens=NEW_TOKENS, min_new_tokens=0,
        eos_token_id=None, pad_token_id=0, output_logits=True, return_dict_in_generate=True)
    gen_tokens = gen.sequences[0, len(prompt):].tolist()
    gen_logits = torch.stack([step[0] for step in gen.logits])
    gen_routing = {layer: list(recorder.rows[layer]) for layer in layers}

    assert gen_tokens == loop_tokens, (gen_tokens, loop_tokens)
    assert len(gen_tokens) == NEW_TOKENS
    cache_diff = float((gen_logits - torch.stack(loop_logits)).abs().max())
    assert cache_diff < 1e-4, cache_diff
    n_positions = len(prompt) + NEW_TOKENS - 1
    for layer in layers:
        assert len(gen_routing[layer]) == n_positions, (layer, len(gen_routing[layer]))
        assert len(loop_routing[layer]) == n_positions
        for (ids_a, w_a, _), (ids_b, w_b, _) in zip(gen_routing[layer], loop_routing[layer]):
            assert ids_a == ids_b
            torch.testing.assert_close(w_a, w_b, rtol=1e-4, atol=1e-5)

    margin = min(top1_margin(row) for row in gen_logits)
    gap = min(router_gap(config, probs) for layer in layers for _, _, probs in gen_routing[layer])
    return dict(prompt_logits=prompt_logits, gen_tokens=gen_tokens, gen_logits=gen_logits,
                routing=gen_routing, cache_diff=cache_diff, margin=margin, gap=gap)


def choose_prompts(model, config, lengths, seed, recorder):
    """Draws prompts until every greedy and routing decision has a safe margin."""
    gen = torch.Generator().manual_seed(seed + 2)
    for attempt in range(200):
        prompts = [torch.randint(FIRST_ORDINARY_ID, config.vocab_size, (n,), generator=gen).tolist()
                   for n in lengths]
        results = [run_prompt(model, config, p, recorder) for p in prompts]
        if all(r["margin"] >= MIN_TOP1_MARGIN and r["gap"] >= MIN_ROUTER_GAP for r in results):
            return prompts, results, attempt
    sys.exit(f"no prompts with safe decision margins for {config}")


def reference_names(name, weight_names):
    """Checks the names match the released DeepSeek-V2 checkpoints' scheme."""
    import re
    patterns = [
        r"model\.embed_tokens\.weight", r"model\.norm\.weight", r"lm_head\.weight",
        r"model\.layers\.\d+\.(input_layernorm|post_attention_layernorm)\.weight",
        r"model\.layers\.\d+\.self_attn\.(q_proj|q_a_proj|q_b_proj|kv_a_proj_with_mqa|kv_b_proj"
        r"|o_proj|q_a_layernorm|kv_a_layernorm)\.weight",
        r"model\.layers\.\d+\.mlp\.(gate_proj|up_proj|down_proj)\.weight",
        r"model\.layers\.\d+\.mlp\.gate\.weight",
        r"model\.layers\.\d+\.mlp\.experts\.\d+\.(gate_proj|up_proj|down_proj)\.weight",
        r"model\.layers\.\d+\.mlp\.shared_experts\.(gate_proj|up_proj|down_proj)\.weight",
    ]
    for tensor in weight_names:
        assert any(re.fullmatch(p, tensor) for p in patterns), f"{name}: unexpected tensor {tensor}"


def expected_names(config):
    names = {"model.embed_tokens.weight", "model.norm.weight"}
    if not config.tie_word_embeddings:
        names.add("lm_head.weight")
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}."
        names |= {p + "input_layernorm.weight", p + "post_attention_layernorm.weight"}
        attn = ["kv_a_proj_with_mqa", "kv_a_layernorm", "kv_b_proj", "o_proj"]
        attn += ["q_proj"] if config.q_lora_rank is None else ["q_a_proj", "q_a_layernorm", "q_b_proj"]
        names |= {p + f"self_attn.{a}.weight" for a in attn}
        proj = ["gate_proj", "up_proj", "down_proj"]
        if i in moe_layers(config):
            names.add(p + "mlp.gate.weight")
            names |= {p + f"mlp.experts.{j}.{w}.weight"
                      for j in range(config.n_routed_experts) for w in proj}
            names |= {p + f"mlp.shared_experts.{w}.weight" for w in proj}
        else:
            names |= {p + f"mlp.{w}.weight" for w in proj}
    return names


def check_shapes(config, tensors):
    h, heads = config.hidden_size, config.num_attention_heads
    qk = config.qk_nope_head_dim + config.qk_rope_head_dim
    for name, t in tensors.items():
        shape = list(t.shape)
        if name.endswith("kv_a_proj_with_mqa.weight"):
            assert shape == [config.kv_lora_rank + config.qk_rope_head_dim, h], (name, shape)
        elif name.endswith("kv_b_proj.weight"):
            assert shape == [heads * (config.qk_nope_head_dim + config.v_head_dim),
                             config.kv_lora_rank], (name, shape)
        elif name.endswith("q_proj.weight") or name.endswith("q_b_proj.weight"):
            assert shape[0] == heads * qk, (name, shape)
        elif name.endswith("shared_experts.gate_proj.weight"):
            assert shape == [config.moe_intermediate_size * config.n_shared_experts, h]
        elif ".experts." in name and name.endswith("gate_proj.weight"):
            assert shape == [config.moe_intermediate_size, h]


def write_fixture(fixture, out_root):
    name = fixture["name"]
    config = fixture_config(fixture)
    bf16 = fixture["dtype"] == "bfloat16"
    model = build_model(config, SEED, round_to_bf16=bf16)
    inv_freq, cos_sin_scale = check_rope(model, config)
    layers = moe_layers(config)
    recorder = RoutingRecorder(model, layers)
    prompts, results, attempts = choose_prompts(model, config, fixture["prompt_lengths"], SEED,
                                                recorder)
    recorder.remove()

    out = out_root / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    saved = model.to(torch.bfloat16) if bf16 else model
    saved.save_pretrained(out, safe_serialization=True)
    model = model.to(torch.float32)

    # The file must hold exactly the released checkpoints' per-expert names.
    with safetensors.safe_open(out / "model.safetensors", "pt") as f:
        names = set(f.keys())
        tensors = {k: f.get_tensor(k) for k in names}
    reference_names(name, names)
    assert names == expected_names(config), names ^ expected_names(config)
    check_shapes(config, tensors)
    want_dtype = torch.bfloat16 if bf16 else torch.float32
    assert all(t.dtype == want_dtype for t in tensors.values())

    arrays = {}
    routing_ids = {}
    for p, r in enumerate(results):
        arrays[f"prompt{p}.logits"] = r["prompt_logits"]
        arrays[f"prompt{p}.decode_logits"] = r["gen_logits"]
        routing_ids[f"prompt{p}"] = {}
        for layer in layers:
            rows = r["routing"][layer]
            routing_ids[f"prompt{p}"][f"layer{layer}"] = [ids for ids, _, _ in rows]
            arrays[f"prompt{p}.layer{layer}.topk_weights"] = torch.stack([w for _, w, _ in rows])
            arrays[f"prompt{p}.layer{layer}.router_probs"] = torch.stack([s for _, _, s in rows])
    arrays = {k: v.to(torch.float32).contiguous() for k, v in arrays.items()}
    versions = {
        "torch": torch.__version__, "transformers": transformers.__version__,
        "safetensors": safetensors.__version__, "numpy": numpy.__version__,
        "python": sys.version.split()[0],
    }
    # One metadata key: safetensors writes metadata in hash order, and a single
    # key keeps the file byte-for-byte reproducible.
    meta = {"about": f"config_name={name} seed={SEED} torch={versions['torch']} "
                     f"transformers={versions['transformers']}; see reference.json"}
    safetensors.torch.save_file(arrays, out / "reference.safetensors", metadata=meta)

    reference = {
        "format": "kubemoe-transformers-reference-1",
        "config_name": name,
        "covers": fixture["covers"],
        "seed": SEED,
        "versions": versions,
        "generator": "tools/make_transformers_fixtures.py",
        "checkpoint_dtype": "bfloat16" if bf16 else "float32",
        "reference_compute_dtype": "float32",
        "reference_note": ("weights were rounded to bf16 before any reference was computed; the "
                           "reference is the f32 forward of those bf16 values") if bf16 else
                          "f32 weights, f32 forward",
        "attn_implementation": "eager",
        "moe_layers": layers,
        "dense_layers": [i for i in range(config.num_hidden_layers) if i not in layers],
        "rope": {"inv_freq": inv_freq, "cos_sin_scale": cos_sin_scale,
                 "softmax_scale": (config.qk_nope_head_dim + config.qk_rope_head_dim) ** -0.5},
        "prompts": prompts,
        "generated": [r["gen_tokens"] for r in results],
        "generation": {"new_tokens": NEW_TOKENS, "method": "greedy argmax, no eos stop; "
                       "model.generate(do_sample=False, use_cache=True) and an uncached loop "
                       "produced the same tokens"},
        "routing": {
            "positions": "one row per fed token: the prompt, then generated tokens 0..14 "
                         "(prefill + 15 cached decode steps of generate)",
            "order": "per row, experts sorted by weight descending (ties by id)",
            "topk_ids": routing_ids,
        },
        "arrays_file": "reference.safetensors",
        "arrays": {
            "prompt{p}.logits": "[len(prompt), vocab] f32 logits of the prompt-only forward",
            "prompt{p}.decode_logits": "[16, vocab] f32 logits that chose generated token t "
                                       "(row 0 = last prompt position), from generate()",
            "prompt{p}.layer{l}.topk_weights": "[len(prompt)+15, top_k] routing weights in the "
                                               "order of routing.topk_ids (already multiplied by "
                                               "routed_scaling_factor)",
            "prompt{p}.layer{l}.router_probs": "[len(prompt)+15, n_routed_experts] softmax of the "
                                               "gate logits (before top-k and scaling)",
        },
        "checks": {
            "prompt_attempts": attempts + 1,
            "max_abs_diff_cached_vs_uncached_logits": max(r["cache_diff"] for r in results),
            "min_top1_logit_margin": min(r["margin"] for r in results),
            "min_router_decision_gap": min(r["gap"] for r in results),
        },
    }

    # Reload with transformers; the logits must match the ones recorded.
    reloaded = DeepseekV2ForCausalLM.from_pretrained(out, torch_dtype=torch.float32,
                                                     attn_implementation="eager").eval()
    reload_diff = 0.0
    with torch.no_grad():
        for p, prompt in enumerate(prompts):
            logits = reloaded(torch.tensor([prompt]), use_cache=False).logits[0]
            reload_diff = max(reload_diff, float((logits - arrays[f"prompt{p}.logits"]).abs().max()))
    assert reload_diff <= 1e-6, reload_diff
    reference["checks"]["reload_max_abs_diff"] = reload_diff
    original_diff = 0.0
    with torch.no_grad():
        for p, prompt in enumerate(prompts):
            logits = original_forward(tensors, config, prompt).to(torch.float32)
            original_diff = max(original_diff,
                                float((logits - arrays[f"prompt{p}.logits"]).abs().max()))
    assert original_diff < 1e-4, f"{name}: transformers and the original code differ by {original_diff}"
    reference["checks"]["max_abs_diff_vs_original_code_float64"] = original_diff

    with open(out / "reference.json", "w") as f:
        f.write(compact_json(reference) + "\n")
    for path in out.iterdir():
        assert path.stat().st_size < MAX_FILE_BYTES, f"{path} is too large"
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    print(f"{name}: prompts after {attempts + 1} draw(s), margin "
          f"{reference['checks']['min_top1_logit_margin']:.4f}, router gap "
          f"{reference['checks']['min_router_decision_gap']:.5f}, cache diff "
          f"{reference['checks']['max_abs_diff_cached_vs_uncached_logits']:.2e}, files {sizes}")
    return reference


def original_forward(tensors, config, prompt):
    """Logits of the prompt computed the way the original DeepSeek-V2 modelling code
    does (written here from its description, in float64, with no transformers
    code), so a fixture only passes if transformers and the original agree on it.
    Differences from transformers that this exercises: RoPE on de-interleaved
    halves with rotate_half, the norm_topk_prob branch, the moe_layer_freq rule
    and the yarn mscale_all_dim softmax factor."""
    w = {k: v.to(torch.float64) for k, v in tensors.items()}
    if "lm_head.weight" not in w:
        w["lm_head.weight"] = w["model.embed_tokens.weight"]
    eps = config.rms_norm_eps
    heads, nope, rope, vdim = (config.num_attention_heads, config.qk_nope_head_dim,
                               config.qk_rope_head_dim, config.v_head_dim)
    n = len(prompt)

    def rms(x, weight):
        return weight * x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)

    def mlp(x, prefix):
        g, u, d = (w[f"{prefix}.{k}.weight"] for k in ("gate_proj", "up_proj", "down_proj"))
        return (torch.nn.functional.silu(x @ g.T) * (x @ u.T)) @ d.T

    # RoPE tables (original: emb = cat(freqs, freqs), cos/sin times _mscale).
    inv_freq, cos_sin_scale = check_rope_tables(config)
    inv_freq = torch.tensor(inv_freq, dtype=torch.float64)
    freqs = torch.outer(torch.arange(n, dtype=torch.float64), inv_freq)
    emb = torch.cat([freqs, freqs], -1)
    cos, sin = emb.cos() * cos_sin_scale, emb.sin() * cos_sin_scale
    softmax_scale = (nope + rope) ** -0.5
    rs = config.rope_scaling
    if rs is not None and rs.get("mscale_all_dim", 0):
        m = 0.1 * rs["mscale_all_dim"] * math.log(rs["factor"]) + 1.0
        softmax_scale *= m * m

    def apply_rope(x):  # x [..., n, rope]: de-interleave, then rotate_half
        x = x.reshape(*x.shape[:-1], rope // 2, 2).transpose(-1, -2).reshape(x.shape)
        rot = torch.cat([-x[..., rope // 2:], x[..., : rope // 2]], -1)
        return x * cos + rot * sin

    h = w["model.embed_tokens.weight"][torch.tensor(prompt)]
    causal = torch.full((n, n), float("-inf"), dtype=torch.float64).triu(1)
    freq = getattr(config, "moe_layer_freq", 1)
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}."
        x = rms(h, w[p + "input_layernorm.weight"])
        if config.q_lora_rank is None:
            q = x @ w[p + "self_attn.q_proj.weight"].T
        else:
            qa = rms(x @ w[p + "self_attn.q_a_proj.weight"].T, w[p + "self_attn.q_a_layernorm.weight"])
            q = qa @ w[p + "self_attn.q_b_proj.weight"].T
        q = q.view(n, heads, nope + rope).transpose(0, 1)
        ckv = x @ w[p + "self_attn.kv_a_proj_with_mqa.weight"].T
        latent, k_pe = ckv[:, : config.kv_lora_rank], ckv[:, config.kv_lora_rank:]
        kv = rms(latent, w[p + "self_attn.kv_a_layernorm.weight"]) @ w[p + "self_attn.kv_b_proj.weight"].T
        kv = kv.view(n, heads, nope + vdim).transpose(0, 1)
        k_nope, v = kv[..., :nope], kv[..., nope:]
        q_pe, k_pe = apply_rope(q[..., nope:]), apply_rope(k_pe[None])
        scores = (q[..., :nope] @ k_nope.transpose(-1, -2) + q_pe @ k_pe.transpose(-1, -2))
        probs = (scores * softmax_scale + causal).softmax(-1)
        attn = (probs @ v).transpose(0, 1).reshape(n, heads * vdim)
        h = h + attn @ w[p + "self_attn.o_proj.weight"].T
        x = rms(h, w[p + "post_attention_layernorm.weight"])
        is_moe = (config.n_routed_experts is not None and i >= config.first_k_dense_replace
                  and i % freq == 0)
        if not is_moe:
            h = h + mlp(x, p + "mlp")
            continue
        scores = (x @ w[p + "mlp.gate.weight"].T).softmax(-1)
        k = config.num_experts_per_tok
        if config.topk_method == "group_limited_greedy":
            grouped = scores.view(n, config.n_group, -1)
            kept = grouped.max(-1).values.topk(config.topk_group, -1).indices
            mask = torch.zeros(n, config.n_group, dtype=torch.bool)
            mask.scatter_(1, kept, True)
            scores = grouped.masked_fill(~mask[..., None], 0.0).view(n, -1)
        weight, idx = scores.topk(k, -1)
        if k > 1 and config.norm_topk_prob:
            weight = weight / (weight.sum(-1, keepdim=True) + 1e-20)
        else:
            weight = weight * config.routed_scaling_factor
        out = torch.zeros_like(x)
        for t in range(n):
            for j in range(k):
                out[t] += weight[t, j] * mlp(x[t], p + f"mlp.experts.{int(idx[t, j])}")
        if config.n_shared_experts is not None:
            out = out + mlp(x, p + "mlp.shared_experts")
        h = h + out
    h = rms(h, w["model.norm.weight"])
    return h @ w["lm_head.weight"].T


def compact_json(value, indent=0):
    """Indented JSON that keeps each list of numbers on one line."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f'{pad} {json.dumps(k)}: {compact_json(v, indent + 1)}' for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = [pad + " " + compact_json(v, indent + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value)


def describe_routing(reference):
    """Counts how varied the routing is, to catch collapsed routers."""
    distinct, used = set(), set()
    for per_layer in reference["routing"]["topk_ids"].values():
        for layer, rows in per_layer.items():
            for ids in rows:
                distinct.add((layer, tuple(sorted(ids))))
                used.update((layer, i) for i in ids)
    return len(distinct), len(used)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=OUT_ROOT)
    parser.add_argument("--only", action="append", help="fixture name (repeatable)")
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    for fixture in FIXTURES:
        if args.only and fixture["name"] not in args.only:
            continue
        reference = write_fixture(fixture, args.out)
        sets, used = describe_routing(reference)
        print(f"  routing: {sets} distinct (layer, expert set) pairs, {used} (layer, expert) used")
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"total size of {args.out}: {total} bytes ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
