#include "engine/weights.h"

#include <utility>

namespace kubemoe::engine {
namespace {

// Head h's W_UK^T [r x dn] for every head, from kv_b_proj [heads * (dn + dv) x r], element for
// element in kv_b_proj's own dtype (a transpose changes no value).
template <typename T>
std::shared_ptr<std::vector<T>> TransposeUk(const T* kv_b, int64_t heads, int64_t dn, int64_t dv,
                                            int64_t r) {
  auto t = std::make_shared<std::vector<T>>(static_cast<size_t>(heads * r * dn));
  for (int64_t h = 0; h < heads; ++h) {
    const T* w_uk = kv_b + h * (dn + dv) * r;  // [dn x r]
    T* dst = t->data() + h * r * dn;           // [r x dn]
    for (int64_t i = 0; i < dn; ++i) {
      for (int64_t j = 0; j < r; ++j) dst[j * dn + i] = w_uk[i * r + j];
    }
  }
  return t;
}

StatusOr<LinearWeight> MakeWUkT(const LinearWeight& kv_b, const ModelConfig& c) {
  const cpu::WeightMatrix& m = kv_b.matrix();
  const int64_t heads = c.num_attention_heads, dn = c.qk_nope_head_dim, dv = c.v_head_dim;
  const int64_t r = c.kv_lora_rank;
  switch (m.format) {
    case cpu::WeightFormat::kBf16: {
      auto t = TransposeUk(m.bf16, heads, dn, dv, r);
      return LinearWeight(cpu::WeightMatrix::Bf16(t->data(), heads * r, dn), t);
    }
    case cpu::WeightFormat::kF16: {
      auto t = TransposeUk(m.f16, heads, dn, dv, r);
      return LinearWeight(cpu::WeightMatrix::F16(t->data(), heads * r, dn), t);
    }
    case cpu::WeightFormat::kF32: {
      auto t = TransposeUk(m.f32, heads, dn, dv, r);
      return LinearWeight(cpu::WeightMatrix::F32(t->data(), heads * r, dn), t);
    }
    case cpu::WeightFormat::kQ8_0:
      break;
  }
  return Internal("kv_b_proj must be kept as stored");
}

int64_t FfnBytes(const std::optional<FfnWeights>& f) { return f ? f->Bytes() : 0; }

}  // namespace

int64_t ModelWeights::Bytes() const {
  auto floats = [](const std::vector<float>& v) { return static_cast<int64_t>(v.size() * 4); };
  int64_t b = embed_tokens.Bytes() + floats(norm) + lm_head.Bytes() + routed_experts.Bytes();
  for (const LayerWeights& l : layers) {
    const AttentionWeights& a = l.attn;
    b += floats(l.input_layernorm) + floats(l.post_attention_layernorm) + a.q_proj.Bytes() +
         a.q_a_proj.Bytes() + floats(a.q_a_layernorm) + a.q_b_proj.Bytes() +
         a.kv_a_proj_with_mqa.Bytes() + floats(a.kv_a_layernorm) + a.kv_b_proj.Bytes() +
         a.w_uk_t.Bytes() + a.o_proj.Bytes() + FfnBytes(l.dense_mlp);
    if (l.moe) b += l.moe->gate.Bytes() + FfnBytes(l.moe->shared);
  }
  return b;
}

StatusOr<LayerWeights> LoadLayerWeights(const std::shared_ptr<const Checkpoint>& ckpt,
                                        const ModelConfig& c, int64_t layer, WeightDType dtype) {
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  const int64_t h = c.hidden_size;
  const int64_t heads = c.num_attention_heads;
  const WeightDType stored = WeightDType::kAsStored;
  LayerWeights w;
  // Reads one vector / matrix into `dst`, returning early on error.
#define KUBEMOE_READ(dst, name, ...)                                                   \
  do {                                                                                 \
    auto r = layers::ReadTensor(*ckpt, p + (name), std::vector<int64_t>{__VA_ARGS__}); \
    if (!r.ok()) return r.status();                                                    \
    (dst) = std::move(*r);                                                             \
  } while (0)
#define KUBEMOE_LINEAR(dst, name, rows, cols, as)                      \
  do {                                                                 \
    auto r = layers::LoadLinear(ckpt, p + (name), (rows), (cols), as); \
    if (!r.ok()) return r.status();                                    \
    (dst) = std::move(*r);                                             \
  } while (0)
  KUBEMOE_READ(w.input_layernorm, "input_layernorm.weight", h);
  KUBEMOE_READ(w.post_attention_layernorm, "post_attention_layernorm.weight", h);
  AttentionWeights& a = w.attn;
  const int64_t qd = heads * c.q_head_dim();
  if (c.q_lora_rank.has_value()) {
    const int64_t ql = *c.q_lora_rank;
    KUBEMOE_LINEAR(a.q_a_proj, "self_attn.q_a_proj.weight", ql, h, dtype);
    KUBEMOE_READ(a.q_a_layernorm, "self_attn.q_a_layernorm.weight", ql);
    KUBEMOE_LINEAR(a.q_b_proj, "self_attn.q_b_proj.weight", qd, ql, dtype);
  } else {
    KUBEMOE_LINEAR(a.q_proj, "self_attn.q_proj.weight", qd, h, dtype);
  }
  KUBEMOE_LINEAR(a.kv_a_proj_with_mqa, "self_attn.kv_a_proj_with_mqa.weight",
                 c.kv_lora_rank + c.qk_rope_head_dim, h, dtype);
  KUBEMOE_READ(a.kv_a_layernorm, "self_attn.kv_a_layernorm.weight", c.kv_lora_rank);
  KUBEMOE_LINEAR(a.kv_b_proj, "self_attn.kv_b_proj.weight",
                 heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank, stored);
  KUBEMOE_LINEAR(a.o_proj, "self_attn.o_proj.weight", h, heads * c.v_head_dim, dtype);
  if (c.attention_bias) {
    return InvalidArgument(c.source + ": attention_bias=true is not supported by the CPU engine");
  }
  StatusOr<LinearWeight> w_uk_t = MakeWUkT(a.kv_b_proj, c);
  if (!w_uk_t.ok()) return w_uk_t.status();
  a.w_uk_t = std::move(*w_uk_t);
  if (!c.IsMoeLayer(layer)) {
    auto mlp = layers::LoadFfn(ckpt, p + "mlp", h, c.intermediate_size, dtype);
    if (!mlp.ok()) return mlp.status();
    w.dense_mlp = std::move(*mlp);
  } else {
    MoeWeights moe;
    KUBEMOE_LINEAR(moe.gate, "mlp.gate.weight", c.n_routed_experts, h, stored);
    if (c.n_shared_experts > 0) {
      auto shared = layers::LoadFfn(ckpt, p + "mlp.shared_experts", h,
                                    c.moe_intermediate_size * c.n_shared_experts, dtype);
      if (!shared.ok()) return shared.status();
      moe.shared = std::move(*shared);
    }
    w.moe = std::move(moe);
  }
#undef KUBEMOE_LINEAR
#undef KUBEMOE_READ
  return w;
}

StatusOr<ModelWeights> LoadModelWeights(const std::shared_ptr<const Checkpoint>& ckpt,
                                        const ModelConfig& c, const LoadWeightOptions& options) {
  ModelWeights w;
  auto embed = layers::LoadLinear(ckpt, "model.embed_tokens.weight", c.vocab_size, c.hidden_size,
                                  WeightDType::kAsStored);
  if (!embed.ok()) return embed.status();
  w.embed_tokens = std::move(*embed);
  auto norm = layers::ReadTensor(*ckpt, "model.norm.weight", {c.hidden_size});
  if (!norm.ok()) return norm.status();
  w.norm = std::move(*norm);
  if (!c.tie_word_embeddings) {
    auto head =
        layers::LoadLinear(ckpt, "lm_head.weight", c.vocab_size, c.hidden_size, options.dtype);
    if (!head.ok()) return head.status();
    w.lm_head = std::move(*head);
  }
  w.layers.reserve(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    auto layer = LoadLayerWeights(ckpt, c, l, options.dtype);
    if (!layer.ok()) return layer.status();
    w.layers.push_back(std::move(*layer));
  }
  if (options.load_routed_experts) {
    std::vector<layers::ExpertKey> keys;
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      if (!c.IsMoeLayer(l)) continue;
      for (int64_t e = 0; e < c.n_routed_experts; ++e) {
        keys.push_back({l, static_cast<int32_t>(e)});
      }
    }
    auto experts = layers::LoadExperts(ckpt, c, keys, options.dtype);
    if (!experts.ok()) return experts.status();
    w.routed_experts = std::move(*experts);
  }
  return w;
}

}  // namespace kubemoe::engine
