"""Tensor names and shapes of a DeepSeek-V2 checkpoint, derived from config.json the way the
Hugging Face modelling code names its parameters. Written independently of the C++ code so tests
can check one against the other."""


def expected_tensors(c):
    """name -> shape, from the config, as DeepseekV2ForCausalLM names its parameters."""
    h, heads = c["hidden_size"], c["num_attention_heads"]
    qhd = c["qk_nope_head_dim"] + c["qk_rope_head_dim"]
    out = {"model.embed_tokens.weight": [c["vocab_size"], h], "model.norm.weight": [h]}
    if not c["tie_word_embeddings"]:
        out["lm_head.weight"] = [c["vocab_size"], h]

    def mlp(prefix, inter):
        out[f"{prefix}.gate_proj.weight"] = [inter, h]
        out[f"{prefix}.up_proj.weight"] = [inter, h]
        out[f"{prefix}.down_proj.weight"] = [h, inter]

    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}"
        out[f"{p}.input_layernorm.weight"] = [h]
        out[f"{p}.post_attention_layernorm.weight"] = [h]
        a = f"{p}.self_attn"
        if c["q_lora_rank"] is None:
            out[f"{a}.q_proj.weight"] = [heads * qhd, h]
        else:
            out[f"{a}.q_a_proj.weight"] = [c["q_lora_rank"], h]
            out[f"{a}.q_a_layernorm.weight"] = [c["q_lora_rank"]]
            out[f"{a}.q_b_proj.weight"] = [heads * qhd, c["q_lora_rank"]]
        out[f"{a}.kv_a_proj_with_mqa.weight"] = [c["kv_lora_rank"] + c["qk_rope_head_dim"], h]
        out[f"{a}.kv_a_layernorm.weight"] = [c["kv_lora_rank"]]
        out[f"{a}.kv_b_proj.weight"] = [heads * (c["qk_nope_head_dim"] + c["v_head_dim"]), c["kv_lora_rank"]]
        out[f"{a}.o_proj.weight"] = [h, heads * c["v_head_dim"]]
        moe = (c["n_routed_experts"] is not None and i >= c["first_k_dense_replace"]
               and i % c["moe_layer_freq"] == 0)
        if moe:
            out[f"{p}.mlp.gate.weight"] = [c["n_routed_experts"], h]
            for e in range(c["n_routed_experts"]):
                mlp(f"{p}.mlp.experts.{e}", c["moe_intermediate_size"])
            if c["n_shared_experts"]:
                mlp(f"{p}.mlp.shared_experts", c["moe_intermediate_size"] * c["n_shared_experts"])
        else:
            mlp(f"{p}.mlp", c["intermediate_size"])
    return out


def parameter_count(config):
    total = 0
    for shape in expected_tensors(config).values():
        n = 1
        for d in shape:
            n *= d
        total += n
    return total
