#include "model/tensor_names.h"

namespace kubemoe {
namespace {

void AddProjection(std::vector<TensorSpec>* out, const std::string& prefix, int64_t out_features,
                   int64_t in_features, bool bias) {
  out->push_back({prefix + ".weight", {out_features, in_features}, TensorRole::kWeight});
  if (bias) out->push_back({prefix + ".bias", {out_features}, TensorRole::kBias});
}

void AddSwiGlu(std::vector<TensorSpec>* out, const std::string& prefix, int64_t hidden,
               int64_t intermediate) {
  AddProjection(out, prefix + ".gate_proj", intermediate, hidden, false);
  AddProjection(out, prefix + ".up_proj", intermediate, hidden, false);
  AddProjection(out, prefix + ".down_proj", hidden, intermediate, false);
}

}  // namespace

std::string ExpertTensorName(int64_t layer, int64_t expert, const char* projection) {
  return "model.layers." + std::to_string(layer) + ".mlp.experts." + std::to_string(expert) + "." +
         projection + ".weight";
}

std::vector<TensorSpec> CheckpointTensors(const ModelConfig& c) {
  std::vector<TensorSpec> out;
  const int64_t h = c.hidden_size;
  const int64_t heads = c.num_attention_heads;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, h}, TensorRole::kWeight});
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer);
    out.push_back({p + ".input_layernorm.weight", {h}, TensorRole::kNorm});
    const std::string attn = p + ".self_attn";
    if (c.q_lora_rank) {
      AddProjection(&out, attn + ".q_a_proj", *c.q_lora_rank, h, c.attention_bias);
      out.push_back({attn + ".q_a_layernorm.weight", {*c.q_lora_rank}, TensorRole::kNorm});
      AddProjection(&out, attn + ".q_b_proj", heads * c.q_head_dim(), *c.q_lora_rank, false);
    } else {
      AddProjection(&out, attn + ".q_proj", heads * c.q_head_dim(), h, false);
    }
    AddProjection(&out, attn + ".kv_a_proj_with_mqa", c.kv_lora_rank + c.qk_rope_head_dim, h,
                  c.attention_bias);
    out.push_back({attn + ".kv_a_layernorm.weight", {c.kv_lora_rank}, TensorRole::kNorm});
    AddProjection(&out, attn + ".kv_b_proj", heads * (c.qk_nope_head_dim + c.v_head_dim),
                  c.kv_lora_rank, false);
    AddProjection(&out, attn + ".o_proj", h, heads * c.v_head_dim, c.attention_bias);
    out.push_back({p + ".post_attention_layernorm.weight", {h}, TensorRole::kNorm});
    if (c.IsMoeLayer(layer)) {
      out.push_back({p + ".mlp.gate.weight", {c.n_routed_experts, h}, TensorRole::kWeight});
      for (int64_t e = 0; e < c.n_routed_experts; ++e) {
        AddSwiGlu(&out, p + ".mlp.experts." + std::to_string(e), h, c.moe_intermediate_size);
      }
      if (c.n_shared_experts > 0) {
        AddSwiGlu(&out, p + ".mlp.shared_experts", h,
                  c.moe_intermediate_size * c.n_shared_experts);
      }
    } else {
      AddSwiGlu(&out, p + ".mlp", h, c.intermediate_size);
    }
  }
  out.push_back({"model.norm.weight", {h}, TensorRole::kNorm});
  if (!c.tie_word_embeddings) {
    out.push_back({"lm_head.weight", {c.vocab_size, h}, TensorRole::kWeight});
  }
  return out;
}

}  // namespace kubemoe
