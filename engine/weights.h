// The weights of a DeepSeek-V2 checkpoint as the CPU engine uses them: f32, row-major, Hugging
// Face layout ([out_features x in_features] for projections), loaded by tensor name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/checkpoint.h"
#include "model/config.h"

namespace kubemoe::engine {

// One SwiGLU MLP: a dense layer's MLP, one routed expert, or the shared experts.
struct FfnWeights {
  int64_t inter = 0;             // intermediate size
  std::vector<float> gate_proj;  // [inter x hidden]
  std::vector<float> up_proj;    // [inter x hidden]
  std::vector<float> down_proj;  // [hidden x inter]
};

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
  std::vector<FfnWeights> experts;   // routed experts; empty when loaded elsewhere
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
  const std::vector<float>& output_embedding() const {
    return lm_head.empty() ? embed_tokens : lm_head;
  }
};

// Reads tensor `name` as f32 and checks its shape. NotFound / InvalidArgument name the tensor,
// the checkpoint directory and the expected and actual shapes.
StatusOr<std::vector<float>> ReadTensor(const Checkpoint& ckpt, const std::string& name,
                                        const std::vector<int64_t>& shape);

// Loads one SwiGLU MLP whose tensors are `prefix`.{gate,up,down}_proj.weight.
StatusOr<FfnWeights> LoadFfn(const Checkpoint& ckpt, const std::string& prefix, int64_t hidden,
                             int64_t inter);

// Loads every tensor of decoder layer `layer`. With load_routed_experts false, a MoE layer's
// routed experts are left out (their executor lives elsewhere, e.g. on remote workers).
StatusOr<LayerWeights> LoadLayerWeights(const Checkpoint& ckpt, const ModelConfig& config,
                                        int64_t layer, bool load_routed_experts = true);

// Loads the whole model. lm_head is read unless tie_word_embeddings.
StatusOr<ModelWeights> LoadModelWeights(const Checkpoint& ckpt, const ModelConfig& config,
                                        bool load_routed_experts = true);

}  // namespace kubemoe::engine
