// The weights of a DeepSeek-V2 checkpoint as the CPU engine uses them. Matrices are
// LinearWeights in the Hugging Face layout ([out_features x in_features]): the checkpoint's own
// bf16/f16/f32 bytes read in place from the mapped file, or Q8_0 made at load (LoadWeightOptions).
// Norm weights are small f32 vectors.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "layers/expert_store.h"
#include "layers/ffn.h"
#include "layers/linear_weight.h"
#include "model/checkpoint.h"
#include "model/config.h"

namespace kubemoe::engine {

using layers::FfnWeights;
using layers::LinearWeight;
using layers::WeightDType;

struct AttentionWeights {
  // With q_lora_rank: q_a_proj [q_lora x hidden], q_a_layernorm [q_lora], q_b_proj
  // [heads * q_head_dim x q_lora]. Without: q_proj [heads * q_head_dim x hidden].
  LinearWeight q_proj;
  LinearWeight q_a_proj;
  std::vector<float> q_a_layernorm;
  LinearWeight q_b_proj;
  LinearWeight kv_a_proj_with_mqa;    // [kv_lora_rank + qk_rope_head_dim x hidden]
  std::vector<float> kv_a_layernorm;  // [kv_lora_rank]
  LinearWeight kv_b_proj;             // [heads * (qk_nope + v_head_dim) x kv_lora_rank]
  // W_UK transposed for the absorbed form, in kv_b_proj's dtype: rows [h * kv_lora_rank,
  // (h + 1) * kv_lora_rank) hold head h's W_UK^T [kv_lora_rank x qk_nope], W_UK being the k_nope
  // rows of kv_b_proj. So q_nope W_UK is a product in the kernels' x * W^T form.
  LinearWeight w_uk_t;
  LinearWeight o_proj;  // [hidden x heads * v_head_dim]
};

struct MoeWeights {
  LinearWeight gate;                 // router: [n_routed_experts x hidden], always as stored
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
  LinearWeight embed_tokens;  // [vocab x hidden], always as stored (rows are looked up)
  std::vector<float> norm;    // [hidden]
  LinearWeight lm_head;       // [vocab x hidden]; empty when tied to embed_tokens
  std::vector<LayerWeights> layers;
  // Routed experts of every MoE layer; empty when they run elsewhere (the router's case).
  layers::ExpertStore routed_experts;
  const LinearWeight& output_embedding() const { return lm_head.empty() ? embed_tokens : lm_head; }
  // Bytes of every weight held (matrices as held, norms in f32).
  int64_t Bytes() const;
};

struct LoadWeightOptions {
  // kQ8_0 quantizes the routed and shared experts, the dense MLPs, q/kv_a/o projections and the
  // LM head. The router gate, kv_b_proj (and its W_UK^T), embeddings and norms stay as stored.
  WeightDType dtype = WeightDType::kAsStored;
  // false on a router: routed experts run on expert-shard workers and are not read at all.
  bool load_routed_experts = true;
};

// Loads every tensor of decoder layer `layer` except its routed experts (see routed_experts).
StatusOr<LayerWeights> LoadLayerWeights(const std::shared_ptr<const Checkpoint>& ckpt,
                                        const ModelConfig& config, int64_t layer,
                                        WeightDType dtype);

// Loads the whole model. lm_head is read unless tie_word_embeddings.
StatusOr<ModelWeights> LoadModelWeights(const std::shared_ptr<const Checkpoint>& ckpt,
                                        const ModelConfig& config,
                                        const LoadWeightOptions& options = {});

}  // namespace kubemoe::engine
