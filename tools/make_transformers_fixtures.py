#!/usr/bin/env python3
"""Builds tiny random DeepSeek-V2 checkpoints with Hugging Face transformers' own
DeepseekV2ForCausalLM and records what transformers computes on them.

The C++ inference engine is tested against these files: same weights, same
prompts, and it must reproduce the logits, the greedy continuations and the
expert routing. The reference is the original DeepSeek-V2 modelling code's
semantics: transformers 4.54 where it agrees with the original, and transformers
with three small documented patches where it does not (YaRN's mscale_all_dim
softmax factor, norm_topk_prob, moe_layer_freq; see install_original_semantics
and the "Patches" section of tools/README-fixtures.md). An independent float64
forward written here (original_forward) must agree with every fixture.

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
from transformers.models.deepseek_v2 import modeling_deepseek_v2  # noqa: E402

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
    # transformers 4.54 reads neither (it has no moe_layer_freq and only softmax
    # scoring); written so config.json states the original code's meaning. The
    # moe_layer_freq patch (install_original_semantics) reads moe_layer_freq.
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
    # The fixtures below reach configs where transformers 4.54 and the original code
    # differ; install_original_semantics patches transformers to the original.
    dict(
        name="yarn_mscale_v2",
        covers="YaRN as released DeepSeek-V2 sets it (factor 40, mscale 0.707, mscale_all_dim "
        "0.707, beta_fast 32, beta_slow 1), scaled down to original_max_position_embeddings 128 "
        "and max_position_embeddings 5120 = 40 * 128; cos/sin factor 1, softmax scale times "
        "get_mscale(40, 0.707)^2 = 1.5896 as in the original (transformers 4.54 patched: "
        "softmax_scale); the third prompt and its continuation run past position 128; q_lora_rank "
        "set, one dense layer then MoE, f32",
        dtype="float32",
        patches=["softmax_scale"],
        prompt_lengths=(5, 9, 140),
        config=dict(
            vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            q_lora_rank=16, kv_lora_rank=16, n_routed_experts=8, num_experts_per_tok=2,
            moe_intermediate_size=16, n_shared_experts=1, first_k_dense_replace=1,
            topk_method="greedy", n_group=1, topk_group=1, routed_scaling_factor=1.0,
            tie_word_embeddings=False,
            # transformers 4.54 replaces factor by max_position_embeddings /
            # original_max_position_embeddings; 5120 / 128 = 40 keeps them equal.
            max_position_embeddings=5120,
            rope_scaling={"type": "yarn", "factor": 40.0, "original_max_position_embeddings": 128,
                          "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 0.707,
                          "mscale_all_dim": 0.707},
        ),
    ),
    dict(
        name="yarn_mscale_ratio_tf5",
        covers="config.json in transformers 5's form: rope_parameters (rope_type yarn, rope_theta "
        "and the YaRN keys) and neither rope_theta nor rope_scaling (rewritten after "
        "save_pretrained, see tools/README-fixtures.md); YaRN factor 40 with mscale 1 and "
        "mscale_all_dim 0.707, so the cos/sin factor is get_mscale(40, 1) / get_mscale(40, 0.707) "
        "= 1.0857 and the softmax scale is times 1.5896 (transformers 4.54 patched: "
        "softmax_scale); original_max_position_embeddings 64, max_position_embeddings 2560, third "
        "prompt runs past position 64; group_limited_greedy (12 experts, n_group 4, topk_group 2), "
        "routed_scaling_factor 1.5, plain q_proj, f32",
        dtype="float32",
        config_format="transformers5",
        patches=["softmax_scale"],
        prompt_lengths=(5, 9, 60),
        config=dict(
            vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
            q_lora_rank=None, kv_lora_rank=16, n_routed_experts=12, num_experts_per_tok=2,
            moe_intermediate_size=16, n_shared_experts=1, first_k_dense_replace=1,
            topk_method="group_limited_greedy", n_group=4, topk_group=2,
            routed_scaling_factor=1.5, tie_word_embeddings=False,
            max_position_embeddings=2560,
            rope_scaling={"type": "yarn", "factor": 40.0, "original_max_position_embeddings": 64,
                          "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0,
                          "mscale_all_dim": 0.707},
        ),
    ),
    dict(
        name="norm_topk_top3",
        covers="norm_topk_prob true with top-3 of 10 (greedy): the original renormalises the three "
        "weights to sum 1 (plus 1e-20) and then does not apply routed_scaling_factor (2.5 here); "
        "transformers 4.54 ignores norm_topk_prob and always scales (patched: norm_topk_prob); "
        "q_lora_rank set, one dense layer then MoE, f32",
        dtype="float32",
        patches=["norm_topk_prob"],
        prompt_lengths=(5, 9, 13),
        config=dict(
            vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
            q_lora_rank=16, kv_lora_rank=16, n_routed_experts=10, num_experts_per_tok=3,
            moe_intermediate_size=16, n_shared_experts=1, first_k_dense_replace=1,
            topk_method="greedy", n_group=1, topk_group=1, routed_scaling_factor=2.5,
            norm_topk_prob=True, tie_word_embeddings=False,
        ),
    ),
    dict(
        name="moe_freq2",
        covers="moe_layer_freq 2 with first_k_dense_replace 1 over 5 layers: layers 2 and 4 are "
        "MoE, layers 0, 1 and 3 dense (original rule: layer >= first_k_dense_replace and layer % "
        "moe_layer_freq == 0; transformers 4.54 ignores moe_layer_freq, patched: moe_layer_freq); "
        "dense layers hold mlp.{gate,up,down}_proj with intermediate_size 48; plain q_proj, f32",
        dtype="float32",
        patches=["moe_layer_freq"],
        prompt_lengths=(5, 9, 13),
        config=dict(
            vocab_size=256, hidden_size=32, intermediate_size=48, num_hidden_layers=5,
            q_lora_rank=None, kv_lora_rank=16, n_routed_experts=8, num_experts_per_tok=2,
            moe_intermediate_size=16, n_shared_experts=1, first_k_dense_replace=1,
            moe_layer_freq=2, topk_method="greedy", n_group=1, topk_group=1,
            routed_scaling_factor=1.0, tie_word_embeddings=False,
        ),
    ),
]


def yarn_get_mscale(factor, mscale):
    # The original code's yarn_get_mscale.
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def original_moe_layer(config, layer):
    """The original code's rule: a layer is MoE iff n_routed_experts is set,
    layer >= first_k_dense_replace and layer % moe_layer_freq == 0."""
    return (config.n_routed_experts is not None and layer >= config.first_k_dense_replace
            and layer % getattr(config, "moe_layer_freq", 1) == 0)


def original_softmax_scale(config):
    """The original attention's softmax_scale: q_head_dim^-0.5, times
    yarn_get_mscale(factor, mscale_all_dim)^2 when YaRN sets a non-zero mscale_all_dim."""
    scale = (config.qk_nope_head_dim + config.qk_rope_head_dim) ** -0.5
    rs = config.rope_scaling
    if rs is not None and rs.get("mscale_all_dim", 0):
        m = yarn_get_mscale(rs["factor"], rs["mscale_all_dim"])
        scale = scale * m * m
    return scale


def active_patches(config):
    """Which of install_original_semantics' patches change this config's model."""
    patches = []
    plain_scale = (config.qk_nope_head_dim + config.qk_rope_head_dim) ** -0.5
    if original_softmax_scale(config) != plain_scale:
        patches.append("softmax_scale")
    if config.num_experts_per_tok > 1 and config.norm_topk_prob:
        patches.append("norm_topk_prob")
    if moe_layers(config) != [i for i in range(config.num_hidden_layers)
                              if i >= config.first_k_dense_replace]:
        patches.append("moe_layer_freq")
    return patches


def install_original_semantics():
    """Patches transformers 4.54's DeepSeek-V2 classes where they differ from the
    original DeepSeek-V2 code (tools/README-fixtures.md, "Patches"). Each patch is a
    no-op for configs where the two agree, so the older fixtures are unchanged. The
    patches wrap __init__/forward, so from_pretrained builds patched models too."""
    mod = modeling_deepseek_v2
    if getattr(mod, "_kubemoe_patched", False):
        return

    # softmax_scale: transformers sets scaling = q_head_dim^-0.5 and never applies
    # YaRN's mscale_all_dim factor; the original multiplies it by mscale^2.
    attention_init = mod.DeepseekV2Attention.__init__

    def patched_attention_init(self, config, layer_idx=None):
        attention_init(self, config, layer_idx)
        self.scaling = original_softmax_scale(config)

    # norm_topk_prob: transformers always returns topk_weight * routed_scaling_factor.
    # The original, when top_k > 1 and norm_topk_prob, returns topk_weight / (sum +
    # 1e-20) instead and never applies the factor. The gate reads its
    # routed_scaling_factor attribute at call time, so setting it to 1 makes that
    # product exact; the renormalisation follows.
    gate_init = mod.DeepseekV2MoEGate.__init__
    gate_forward = mod.DeepseekV2MoEGate.forward

    def patched_gate_init(self, config):
        gate_init(self, config)
        self.renormalise = self.top_k > 1 and bool(config.norm_topk_prob)
        if self.renormalise:
            self.routed_scaling_factor = 1.0

    def patched_gate_forward(self, hidden_states):
        topk_idx, topk_weight = gate_forward(self, hidden_states)
        if self.renormalise:
            topk_weight = topk_weight / (topk_weight.sum(dim=-1, keepdim=True) + 1e-20)
        return topk_idx, topk_weight

    # moe_layer_freq: transformers makes every layer >= first_k_dense_replace MoE.
    # Where the original rule says dense, swap in a dense MLP (intermediate_size).
    layer_init = mod.DeepseekV2DecoderLayer.__init__

    def patched_layer_init(self, config, layer_idx):
        layer_init(self, config, layer_idx)
        want_moe = original_moe_layer(config, layer_idx)
        if isinstance(self.mlp, mod.DeepseekV2MoE) != want_moe:
            self.mlp = mod.DeepseekV2MoE(config) if want_moe else mod.DeepseekV2MLP(config)

    mod.DeepseekV2Attention.__init__ = patched_attention_init
    mod.DeepseekV2MoEGate.__init__ = patched_gate_init
    mod.DeepseekV2MoEGate.forward = patched_gate_forward
    mod.DeepseekV2DecoderLayer.__init__ = patched_layer_init
    mod._kubemoe_patched = True


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
    # The original rule. transformers 4.54 alone ignores moe_layer_freq; the
    # moe_layer_freq patch makes it follow this.
    return [i for i in range(config.num_hidden_layers) if original_moe_layer(config, i)]


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
    expected_scale = original_softmax_scale(config)
    for i, layer in enumerate(model.model.layers):
        assert abs(layer.self_attn.scaling - expected_scale) < 1e-12
        assert isinstance(layer.mlp, modeling_deepseek_v2.DeepseekV2MoE) == original_moe_layer(
            config, i), i
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

        cos_sin_scale = yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim)
        # The softmax scale's mscale_all_dim factor is original_softmax_scale's.
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
            chosen = torch.gather(probs, 1, topk_idx)
            if module.renormalise:  # the norm_topk_prob patch
                expected = chosen / chosen.sum(-1, keepdim=True)
            else:
                expected = chosen * module.routed_scaling_factor
            torch.testing.assert_close(expected, topk_weight)
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
    v5 = fixture.get("config_format") == "transformers5"
    config = fixture_config(fixture)
    bf16 = fixture["dtype"] == "bfloat16"
    model = build_model(config, SEED, round_to_bf16=bf16)
    inv_freq, cos_sin_scale = check_rope(model, config)
    patches = active_patches(config)
    assert patches == fixture.get("patches", []), (name, patches)
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
        # Only where they apply, so the older fixtures' files stay byte-identical.
        **({"reference_patches": {k: PATCH_NOTES[k] for k in patches}} if patches else {}),
        **({"config_format": CONFIG_FORMAT_NOTE} if v5 else {}),
        "attn_implementation": "eager",
        "moe_layers": layers,
        "dense_layers": [i for i in range(config.num_hidden_layers) if i not in layers],
        "rope": {"inv_freq": inv_freq, "cos_sin_scale": cos_sin_scale,
                 "softmax_scale": original_softmax_scale(config)},
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
                                               "order of routing.topk_ids " + (
                                                   "(renormalised to sum 1 for norm_topk_prob; "
                                                   "routed_scaling_factor not applied)"
                                                   if "norm_topk_prob" in patches else
                                                   "(already multiplied by "
                                                   "routed_scaling_factor)"),
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

    if v5:
        write_transformers5_config(out / "config.json")
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
    softmax_scale = original_softmax_scale(config)

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


PATCH_NOTES = {
    "softmax_scale": "attention scaling = q_head_dim^-0.5 * yarn_get_mscale(factor, "
                     "mscale_all_dim)^2 as in the original; transformers 4.54 omits the mscale^2",
    "norm_topk_prob": "gate weights renormalised to sum 1 (+1e-20) without routed_scaling_factor "
                      "as in the original; transformers 4.54 ignores norm_topk_prob",
    "moe_layer_freq": "layers with layer % moe_layer_freq != 0 are dense as in the original; "
                      "transformers 4.54 ignores moe_layer_freq",
}
CONFIG_FORMAT_NOTE = ("config.json rewritten after save_pretrained into transformers 5's form "
                      "(rope_parameters; no rope_theta or rope_scaling); transformers 4.54 cannot "
                      "write it. The weights keep the released per-expert tensor names.")


def to_transformers5(v4):
    """transformers 5's save_pretrained form of a config dict that 4.54 wrote:
    rope_theta and rope_scaling move into rope_parameters (rope_type, rope_theta and
    the YaRN keys; a config built by transformers 5 has no legacy "type"), torch_dtype
    becomes dtype, and 5 adds qk_head_dim, pad_token_id, pretraining_tp and
    output_router_logits (compare tests/data/configs/deepseek-v2-transformers5.json)."""
    v5 = dict(v4)
    scaling = dict(v5.pop("rope_scaling") or {})
    scaling.pop("type", None)
    rope = {"rope_theta": v5.pop("rope_theta"), "rope_type": scaling.pop("rope_type", "default")}
    rope.update(scaling)
    v5["rope_parameters"] = rope
    v5["dtype"] = v5.pop("torch_dtype")
    v5["qk_head_dim"] = v5["qk_nope_head_dim"] + v5["qk_rope_head_dim"]
    v5.setdefault("pad_token_id", None)
    v5.setdefault("pretraining_tp", 1)
    v5.setdefault("output_router_logits", False)
    return v5


def from_transformers5(v5, v4_keys):
    """Inverse of to_transformers5, for the round-trip check."""
    v4 = {k: v for k, v in v5.items() if k in v4_keys}
    rope = dict(v5["rope_parameters"])
    v4["rope_theta"] = rope.pop("rope_theta")
    if rope["rope_type"] == "default":
        v4["rope_scaling"] = None
    else:
        v4["rope_scaling"] = dict(rope, type=rope["rope_type"])
    v4["torch_dtype"] = v5["dtype"]
    return v4


def write_transformers5_config(path):
    with open(path) as f:
        v4 = json.load(f)
    v5 = to_transformers5(v4)
    assert "rope_scaling" not in v5 and "rope_theta" not in v5
    # Nothing lost: the rewrite maps back to exactly what transformers 4.54 saved.
    assert from_transformers5(v5, set(v4)) == v4
    # Written as transformers writes config.json: sorted keys, indent 2.
    with open(path, "w") as f:
        f.write(json.dumps(v5, indent=2, sort_keys=True) + "\n")


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
    install_original_semantics()
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
