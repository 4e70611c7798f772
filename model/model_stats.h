// Sizes derived from a ModelConfig: parameter counts (total and activated per token) and the
// KV-cache footprint of MLA against multi-head attention of the same shape.
#pragma once

#include <cstdint>

#include "model/config.h"

namespace kubemoe {

struct ParameterCounts {
  int64_t embedding = 0;       // model.embed_tokens
  int64_t lm_head = 0;         // 0 when tied to the embedding
  int64_t attention = 0;       // all layers: projections and their norms
  int64_t dense_mlp = 0;       // all dense (non-MoE) MLP layers
  int64_t routed_experts = 0;  // all routed experts of all MoE layers
  int64_t shared_experts = 0;
  int64_t gates = 0;           // router (gate) weights
  int64_t norms = 0;           // input / post-attention layer norms and the final norm
  int64_t total = 0;
  // Per token: everything but the routed experts, plus num_experts_per_tok routed experts per
  // MoE layer. With and without the embedding lookup, which costs no FLOPs.
  int64_t activated = 0;
  int64_t activated_without_embedding = 0;
  int64_t per_routed_expert = 0;  // parameters of one routed expert (3 matrices)
};

// Counts the parameters exactly as the checkpoint's tensors would hold them.
ParameterCounts CountParameters(const ModelConfig& config);

struct KvCacheStats {
  // MLA caches the compressed latent c_kv and the shared rope key per token and layer:
  // (kv_lora_rank + qk_rope_head_dim) x layers elements.
  int64_t mla_elements_per_token = 0;
  // Multi-head attention with the same heads, per-head dim d_h = qk_nope_head_dim and layers, as
  // the paper's Table 1 counts it: 2 x n_h x d_h x layers.
  int64_t mha_elements_per_token = 0;
  double mla_over_mha = 0;  // fraction, e.g. 0.0176
};

KvCacheStats ComputeKvCacheStats(const ModelConfig& config);

}  // namespace kubemoe
