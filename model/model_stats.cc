#include "model/model_stats.h"

namespace kubemoe {

ParameterCounts CountParameters(const ModelConfig& c) {
  ParameterCounts p;
  const int64_t h = c.hidden_size;
  const int64_t heads = c.num_attention_heads;
  const int64_t bias = c.attention_bias ? 1 : 0;

  // MLA projections of one layer (tensor shapes as in the checkpoint).
  int64_t attention = 0;
  if (c.q_lora_rank) {
    const int64_t r = *c.q_lora_rank;
    attention += r * h + bias * r;             // q_a_proj (+ bias)
    attention += r;                            // q_a_layernorm
    attention += heads * c.q_head_dim() * r;   // q_b_proj
  } else {
    attention += heads * c.q_head_dim() * h;   // q_proj
  }
  const int64_t kv_a_out = c.kv_lora_rank + c.qk_rope_head_dim;
  attention += kv_a_out * h + bias * kv_a_out;                                // kv_a_proj_with_mqa
  attention += c.kv_lora_rank;                                               // kv_a_layernorm
  attention += heads * (c.qk_nope_head_dim + c.v_head_dim) * c.kv_lora_rank;  // kv_b_proj
  attention += h * heads * c.v_head_dim + bias * h;                          // o_proj

  const int64_t dense_mlp = 3 * h * c.intermediate_size;
  p.per_routed_expert = 3 * h * c.moe_intermediate_size;
  const int64_t shared = 3 * h * c.moe_intermediate_size * c.n_shared_experts;
  const int64_t gate = c.n_routed_experts * h;

  const int64_t moe_layers = c.NumMoeLayers();
  const int64_t dense_layers = c.num_hidden_layers - moe_layers;
  p.embedding = c.vocab_size * h;
  p.lm_head = c.tie_word_embeddings ? 0 : c.vocab_size * h;
  p.attention = attention * c.num_hidden_layers;
  p.dense_mlp = dense_mlp * dense_layers;
  p.routed_experts = p.per_routed_expert * c.n_routed_experts * moe_layers;
  p.shared_experts = shared * moe_layers;
  p.gates = gate * moe_layers;
  p.norms = 2 * h * c.num_hidden_layers + h;
  p.total = p.embedding + p.lm_head + p.attention + p.dense_mlp + p.routed_experts +
            p.shared_experts + p.gates + p.norms;
  p.activated = p.total - p.routed_experts +
                p.per_routed_expert * c.num_experts_per_tok * moe_layers;
  // A tied embedding is also the LM head, whose product every token pays for.
  p.activated_without_embedding = p.activated - (c.tie_word_embeddings ? 0 : p.embedding);
  return p;
}

KvCacheStats ComputeKvCacheStats(const ModelConfig& c) {
  KvCacheStats s;
  s.mla_elements_per_token = (c.kv_lora_rank + c.qk_rope_head_dim) * c.num_hidden_layers;
  s.mha_elements_per_token =
      2 * c.num_attention_heads * c.qk_nope_head_dim * c.num_hidden_layers;
  s.mla_over_mha = s.mha_elements_per_token == 0
                       ? 0.0
                       : static_cast<double>(s.mla_elements_per_token) /
                             static_cast<double>(s.mha_elements_per_token);
  return s;
}

}  // namespace kubemoe
