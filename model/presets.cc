#include "model/presets.h"

namespace kubemoe {

std::vector<std::string> PresetNames() { return {"tiny", "bench"}; }

StatusOr<ModelConfig> PresetConfig(std::string_view name, int64_t vocab_size,
                                   std::optional<int64_t> bos_token_id,
                                   std::optional<int64_t> eos_token_id) {
  ModelConfig c;
  c.source = "preset " + std::string(name);
  c.vocab_size = vocab_size;
  c.bos_token_id = bos_token_id;
  c.eos_token_id = eos_token_id;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-6;
  if (name == "tiny") {
    // Small but with every feature on: q_lora, group-limited routing, a dense first layer,
    // shared experts and YaRN scaling, so tests exercise all paths.
    c.hidden_size = 64;
    c.intermediate_size = 128;
    c.moe_intermediate_size = 32;
    c.num_hidden_layers = 3;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 4;
    c.n_routed_experts = 16;
    c.n_shared_experts = 1;
    c.num_experts_per_tok = 4;
    c.routed_scaling_factor = 1.0;
    c.kv_lora_rank = 32;
    c.q_lora_rank = 48;
    c.qk_rope_head_dim = 8;
    c.qk_nope_head_dim = 16;
    c.v_head_dim = 16;
    c.topk_method = TopkMethod::kGroupLimitedGreedy;
    c.topk_method_name = "group_limited_greedy";
    c.n_group = 4;
    c.topk_group = 2;
    c.first_k_dense_replace = 1;
    c.max_position_embeddings = 2048;
    c.rope_scaling = YarnScaling{.factor = 4.0,
                                 .original_max_position_embeddings = 512,
                                 .beta_fast = 32.0,
                                 .beta_slow = 1.0,
                                 .mscale = 0.707,
                                 .mscale_all_dim = 0.707};
    c.torch_dtype = "float32";
  } else if (name == "bench") {
    c.hidden_size = 2048;
    c.intermediate_size = 10944;
    c.moe_intermediate_size = 1408;
    c.num_hidden_layers = 3;
    c.num_attention_heads = 16;
    c.num_key_value_heads = 16;
    c.n_routed_experts = 64;
    c.n_shared_experts = 2;
    c.num_experts_per_tok = 6;
    c.routed_scaling_factor = 1.0;
    c.kv_lora_rank = 512;
    c.q_lora_rank = std::nullopt;
    c.qk_rope_head_dim = 64;
    c.qk_nope_head_dim = 128;
    c.v_head_dim = 128;
    c.topk_method = TopkMethod::kGreedy;
    c.topk_method_name = "greedy";
    c.n_group = 1;
    c.topk_group = 1;
    c.first_k_dense_replace = 1;
    c.max_position_embeddings = 163840;
    c.rope_scaling = YarnScaling{.factor = 40.0,
                                 .original_max_position_embeddings = 4096,
                                 .beta_fast = 32.0,
                                 .beta_slow = 1.0,
                                 .mscale = 0.707,
                                 .mscale_all_dim = 0.707};
    c.torch_dtype = "bfloat16";
  } else {
    std::string known;
    for (const auto& n : PresetNames()) known += (known.empty() ? "" : ", ") + n;
    return NotFound("unknown preset \"" + std::string(name) + "\" (known: " + known + ")");
  }
  KUBEMOE_RETURN_IF_ERROR(ValidateModelConfig(c));
  return c;
}

}  // namespace kubemoe
