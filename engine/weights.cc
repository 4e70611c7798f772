#include "engine/weights.h"

#include <utility>

namespace kubemoe::engine {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace

StatusOr<std::vector<float>> ReadTensor(const Checkpoint& ckpt, const std::string& name,
                                        const std::vector<int64_t>& shape) {
  if (!ckpt.Has(name)) {
    return NotFound("checkpoint " + ckpt.dir() + " has no tensor " + name + " (expected shape " +
                    ShapeString(shape) + ")");
  }
  StatusOr<TensorInfo> info = ckpt.Info(name);
  if (!info.ok()) return info.status();
  std::vector<int64_t> have(info->shape.begin(), info->shape.end());
  if (have != shape) {
    return InvalidArgument("checkpoint " + ckpt.dir() + ": tensor " + name + " has shape " +
                           ShapeString(have) + ", the config implies " + ShapeString(shape));
  }
  return ckpt.ReadFloat(name);
}

StatusOr<FfnWeights> LoadFfn(const Checkpoint& ckpt, const std::string& prefix, int64_t hidden,
                             int64_t inter) {
  FfnWeights ffn;
  ffn.inter = inter;
  auto gate = ReadTensor(ckpt, prefix + ".gate_proj.weight", {inter, hidden});
  if (!gate.ok()) return gate.status();
  auto up = ReadTensor(ckpt, prefix + ".up_proj.weight", {inter, hidden});
  if (!up.ok()) return up.status();
  auto down = ReadTensor(ckpt, prefix + ".down_proj.weight", {hidden, inter});
  if (!down.ok()) return down.status();
  ffn.gate_proj = std::move(*gate);
  ffn.up_proj = std::move(*up);
  ffn.down_proj = std::move(*down);
  return ffn;
}

StatusOr<LayerWeights> LoadLayerWeights(const Checkpoint& ckpt, const ModelConfig& c, int64_t layer,
                                        bool load_routed_experts) {
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
    if (load_routed_experts) {
      moe.experts.reserve(static_cast<size_t>(c.n_routed_experts));
      for (int64_t e = 0; e < c.n_routed_experts; ++e) {
        auto ffn =
            LoadFfn(ckpt, p + "mlp.experts." + std::to_string(e), h, c.moe_intermediate_size);
        if (!ffn.ok()) return ffn.status();
        moe.experts.push_back(std::move(*ffn));
      }
    }
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
    auto layer = LoadLayerWeights(ckpt, c, l, load_routed_experts);
    if (!layer.ok()) return layer.status();
    w.layers.push_back(std::move(*layer));
  }
  return w;
}

}  // namespace kubemoe::engine
