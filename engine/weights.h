// The weights of a DeepSeek-V2 checkpoint as the CPU engine uses them: f32, row-major, Hugging
// Face layout ([out_features x in_features] for projections), loaded by tensor name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/checkpoint.h"
#include "layers/expert_store.h"
#include "layers/ffn.h"
#include "model/config.h"

namespace kubemoe::engine {

using layers::FfnWeights;
using layers::LoadFfn;
using layers::ReadTensor;

struct AttentionWeights {
  // With q_lora_rank: q_a_proj [q_lora x hidden], q_a_layernorm [q_lora], q_b_proj
  // [heads * q_head_dim x q_lora]. Without: q_proj [heads * q_head_dim x hidden].
  std::vector<float> q_proj;
  std::vector<float> q_a_proj;
  std::vector<float> q_a_layernorm;
  std::vector<float> q_b_proj;
  std::vector<float> kv_a_proj_with_mqa;  // [kv_lora_rank + qk_rope_head_dim x hidden]
  std::vector<float> kv_a_layernorm;      // [kv_lora_rank]
  std::vector<float> kv_b_proj;           // [heads * (qk_nope + v_head_dim) x kv_lora_rank]
  std::vector<float> o_proj;              // [hidden x heads * v_head_dim]
};

struct MoeWeights {
  std::vector<float> gate;           // router: [n_routed_experts x hidden]
  std::optional<FfnWeights> shared;  // absent when n_shared_experts == 0
};

struct LayerWeights {
  std::vector<float> input_layernorm;
  std::vector<float> post_attention_layernorm;
  AttentionWeights attn;
  std::optional<FfnWeights> dense_mlp;  // dense layers
  std::optional<MoeWeights> moe;        // MoE layers
};

struct ModelWeights {
  std::vector<float> embed_tokens;  // [vocab x hidden]
  std::vector<float> norm;          // [hidden]
  std::vector<float> lm_head;       // [vocab x hidden]; empty when tied to embed_tokens
  std::vector<LayerWeights> layers;
  // Routed experts of every MoE layer; empty when they run elsewhere (the router's case).
  layers::ExpertStore routed_experts;
  const std::vector<float>& output_embedding() const {
    return lm_head.empty() ? embed_tokens : lm_head;
  }
};

// Loads every tensor of decoder layer `layer` except its routed experts (see routed_experts).
StatusOr<LayerWeights> LoadLayerWeights(const Checkpoint& ckpt, const ModelConfig& config,
                                        int64_t layer);

// Loads the whole model; the routed experts only when load_routed_experts (a router runs them
// remotely). lm_head is read unless tie_word_embeddings.
StatusOr<ModelWeights> LoadModelWeights(const Checkpoint& ckpt, const ModelConfig& config,
                                        bool load_routed_experts = true);

}  // namespace kubemoe::engine
