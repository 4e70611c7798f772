#include "engine/weights.h"

#include <utility>

namespace kubemoe::engine {

StatusOr<LayerWeights> LoadLayerWeights(const Checkpoint& ckpt, const ModelConfig& c,
                                        int64_t layer) {
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  const int64_t h = c.hidden_size;
  const int64_t heads = c.num_attention_heads;
  LayerWeights w;
  // Reads one tensor into `dst`, returning early on error.
#define KUBEMOE_READ(dst, name, ...)                                          \
  do {                                                                        \
    auto r = ReadTensor(ckpt, p + (name), std::vector<int64_t>{__VA_ARGS__}); \
    if (!r.ok()) return r.status();                                           \
    (dst) = std::move(*r);                                                    \
  } while (0)
  KUBEMOE_READ(w.input_layernorm, "input_layernorm.weight", h);
  KUBEMOE_READ(w.post_attention_layernorm, "post_attention_layernorm.weight", h);
  AttentionWeights& a = w.attn;
  const int64_t qd = heads * c.q_head_dim();
  if (c.q_lora_rank.has_value()) {
    const int64_t ql = *c.q_lora_rank;
    KUBEMOE_READ(a.q_a_proj, "self_attn.q_a_proj.weight", ql, h);
    KUBEMOE_READ(a.q_a_layernorm, "self_attn.q_a_layernorm.weight", ql);
    KUBEMOE_READ(a.q_b_proj, "self_attn.q_b_proj.weight", qd, ql);
  } else {
    KUBEMOE_READ(a.q_proj, "self_attn.q_proj.weight", qd, h);
  }
  KUBEMOE_READ(a.kv_a_proj_with_mqa, "self_attn.kv_a_proj_with_mqa.weight",
               c.kv_lora_rank + c.qk_rope_head_dim, h);
  KUBEMOE_READ(a.kv_a_layernorm, "self_attn.kv_a_layernorm.weight", c.kv_lora_rank);
  KUBEMOE_READ(a.kv_b_proj, "self_attn.kv_b_proj.weight",
               heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank);
  KUBEMOE_READ(a.o_proj, "self_attn.o_proj.weight", h, heads * c.v_head_dim);
  if (c.attention_bias) {
    return InvalidArgument(c.source + ": attention_bias=true is not supported by the CPU engine");
  }
  if (!c.IsMoeLayer(layer)) {
    auto mlp = LoadFfn(ckpt, p + "mlp", h, c.intermediate_size);
    if (!mlp.ok()) return mlp.status();
    w.dense_mlp = std::move(*mlp);
  } else {
    MoeWeights moe;
    KUBEMOE_READ(moe.gate, "mlp.gate.weight", c.n_routed_experts, h);
    if (c.n_shared_experts > 0) {
      auto shared =
          LoadFfn(ckpt, p + "mlp.shared_experts", h, c.moe_intermediate_size * c.n_shared_experts);
      if (!shared.ok()) return shared.status();
      moe.shared = std::move(*shared);
    }
    w.moe = std::move(moe);
  }
#undef KUBEMOE_READ
  return w;
}

StatusOr<ModelWeights> LoadModelWeights(const Checkpoint& ckpt, const ModelConfig& c,
                                        bool load_routed_experts) {
  ModelWeights w;
  auto embed = ReadTensor(ckpt, "model.embed_tokens.weight", {c.vocab_size, c.hidden_size});
  if (!embed.ok()) return embed.status();
  w.embed_tokens = std::move(*embed);
  auto norm = ReadTensor(ckpt, "model.norm.weight", {c.hidden_size});
  if (!norm.ok()) return norm.status();
  w.norm = std::move(*norm);
  if (!c.tie_word_embeddings) {
    auto head = ReadTensor(ckpt, "lm_head.weight", {c.vocab_size, c.hidden_size});
    if (!head.ok()) return head.status();
    w.lm_head = std::move(*head);
  }
  w.layers.reserve(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    auto layer = LoadLayerWeights(ckpt, c, l);
    if (!layer.ok()) return layer.status();
    w.layers.push_back(std::move(*layer));
  }
  if (load_routed_experts) {
    std::vector<layers::ExpertKey> keys;
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      if (!c.IsMoeLayer(l)) continue;
      for (int64_t e = 0; e < c.n_routed_experts; ++e) {
        keys.push_back({l, static_cast<int32_t>(e)});
      }
    }
    auto experts = layers::LoadExperts(ckpt, c, keys);
    if (!experts.ok()) return experts.status();
    w.routed_experts = std::move(*experts);
  }
  return w;
}

}  // namespace kubemoe::engine
