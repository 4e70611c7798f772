#include "engine/mla.h"

#include <algorithm>
#include <optional>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"

namespace kubemoe::engine {
namespace {

std::optional<cpu::YarnParams> Yarn(const ModelConfig& c) {
  if (!c.rope_scaling) return std::nullopt;
  const YarnScaling& y = *c.rope_scaling;
  return cpu::YarnParams{.factor = y.factor,
                         .original_max_position_embeddings = y.original_max_position_embeddings,
                         .beta_fast = y.beta_fast,
                         .beta_slow = y.beta_slow,
                         .mscale = y.mscale,
                         .mscale_all_dim = y.mscale_all_dim};
}

struct Dims {
  int64_t heads, dn, dr, dv, dq, r, row, kvb;
  explicit Dims(const ModelConfig& c)
      : heads(c.num_attention_heads),
        dn(c.qk_nope_head_dim),
        dr(c.qk_rope_head_dim),
        dv(c.v_head_dim),
        dq(c.qk_nope_head_dim + c.qk_rope_head_dim),
        r(c.kv_lora_rank),
        row(c.kv_lora_rank + c.qk_rope_head_dim),
        kvb(c.qk_nope_head_dim + c.v_head_dim) {}
};

// Decompressed attention of one sequence: expands every cached latent through kv_b_proj.
void AttendDecompressed(const Dims& d, const AttentionWeights& w, float scale, const float* q,
                        const SequenceSlice& s, const float* cache, float* attn_out) {
  const int64_t start = s.cache->length();
  const int64_t len = start + s.count;
  std::vector<float> kv(static_cast<size_t>(len * d.heads * d.kvb));
  cpu::LinearStrided(cache, d.row, len, d.r, w.kv_b_proj.data(), d.r, d.heads * d.kvb, kv.data(),
                     d.heads * d.kvb);
  std::vector<float> keys(static_cast<size_t>(len * d.dq));
  std::vector<int64_t> limits(static_cast<size_t>(s.count));
  for (int64_t i = 0; i < s.count; ++i) limits[static_cast<size_t>(i)] = start + i + 1;
  std::vector<float> scratch(static_cast<size_t>(cpu::AttentionScratchFloats(s.count, len)));
  for (int64_t h = 0; h < d.heads; ++h) {
    for (int64_t j = 0; j < len; ++j) {
      const float* k_nope = kv.data() + (j * d.heads + h) * d.kvb;
      float* key = keys.data() + j * d.dq;
      std::copy(k_nope, k_nope + d.dn, key);
      std::copy(cache + j * d.row + d.r, cache + (j + 1) * d.row, key + d.dn);
    }
    cpu::Attention(q + (s.row * d.heads + h) * d.dq, d.heads * d.dq, s.count, limits.data(),
                   keys.data(), d.dq, kv.data() + h * d.kvb + d.dn, d.heads * d.kvb, len, d.dq,
                   d.dv, scale, attn_out + (s.row * d.heads + h) * d.dv, d.heads * d.dv,
                   scratch.data());
  }
}

// Absorbed attention of one sequence: scores against the latent rows themselves.
void AttendAbsorbed(const Dims& d, const AttentionWeights& w, float scale, const float* q,
                    const SequenceSlice& s, const float* cache, float* attn_out) {
  const int64_t start = s.cache->length();
  const int64_t len = start + s.count;
  const int64_t n_q = s.count * d.heads;  // query rows: (token, head)
  // q_abs[(i, h)] = [q_nope_h W_UK_h | q_pe_h], W_UK_h = rows [h*kvb, h*kvb + dn) of kv_b_proj.
  std::vector<float> q_abs(static_cast<size_t>(n_q * d.row));
  for (int64_t h = 0; h < d.heads; ++h) {
    const float* w_uk = w.kv_b_proj.data() + h * d.kvb * d.r;
    cpu::MatMulStrided(q + (s.row * d.heads + h) * d.dq, d.heads * d.dq, s.count, d.dn, w_uk, d.r,
                       d.r, q_abs.data() + h * d.row, d.heads * d.row);
    for (int64_t i = 0; i < s.count; ++i) {
      const float* q_pe = q + ((s.row + i) * d.heads + h) * d.dq + d.dn;
      std::copy(q_pe, q_pe + d.dr, q_abs.data() + (i * d.heads + h) * d.row + d.r);
    }
  }
  std::vector<int64_t> limits(static_cast<size_t>(n_q));
  for (int64_t i = 0; i < s.count; ++i) {
    std::fill_n(limits.begin() + i * d.heads, d.heads, start + i + 1);
  }
  std::vector<float> latent(static_cast<size_t>(n_q * d.r));
  std::vector<float> scratch(static_cast<size_t>(cpu::AttentionScratchFloats(n_q, len)));
  cpu::Attention(q_abs.data(), d.row, n_q, limits.data(), cache, d.row, cache, d.row, len, d.row,
                 d.r, scale, latent.data(), d.r, scratch.data());
  // out_h = latent_h W_UV_h^T, W_UV_h = rows [h*kvb + dn, (h+1)*kvb) of kv_b_proj.
  for (int64_t h = 0; h < d.heads; ++h) {
    const float* w_uv = w.kv_b_proj.data() + (h * d.kvb + d.dn) * d.r;
    cpu::LinearStrided(latent.data() + h * d.r, d.heads * d.r, s.count, d.r, w_uv, d.r, d.dv,
                       attn_out + (s.row * d.heads + h) * d.dv, d.heads * d.dv);
  }
}

}  // namespace

MlaConstants MlaConstants::FromConfig(const ModelConfig& c) {
  MlaConstants k;
  const std::optional<cpu::YarnParams> yarn = Yarn(c);
  const cpu::YarnParams* y = yarn ? &*yarn : nullptr;
  k.inv_freq.resize(static_cast<size_t>(c.qk_rope_head_dim / 2));
  cpu::RopeInvFreq(c.qk_rope_head_dim, c.rope_theta, y, k.inv_freq.data());
  k.cos_sin_scale = static_cast<float>(cpu::RopeCosSinScale(y));
  k.softmax_scale = static_cast<float>(cpu::AttentionSoftmaxScale(c.q_head_dim(), y));
  return k;
}

void MlaForward(const ModelConfig& c, const AttentionWeights& w, const MlaConstants& k,
                int64_t layer, const float* x, int64_t rows, std::span<const SequenceSlice> slices,
                const float* cos, const float* sin, float* out) {
  const Dims d(c);
  const int64_t hidden = c.hidden_size;
  // The latent norms (q_a_layernorm, kv_a_layernorm) use DeepseekV2RMSNorm's default eps 1e-6
  // in the original code and in transformers, whatever rms_norm_eps (the decoder norms') says.
  const float eps = kLatentNormEps;
  const int64_t half = d.dr / 2;

  // Queries [rows x heads x (dn + dr)].
  std::vector<float> q(static_cast<size_t>(rows * d.heads * d.dq));
  if (c.q_lora_rank.has_value()) {
    const int64_t ql = *c.q_lora_rank;
    std::vector<float> qa(static_cast<size_t>(rows * ql));
    cpu::Linear(x, rows, hidden, w.q_a_proj.data(), ql, qa.data());
    cpu::RmsNorm(qa.data(), ql, rows, ql, w.q_a_layernorm.data(), eps, qa.data(), ql);
    cpu::Linear(qa.data(), rows, ql, w.q_b_proj.data(), d.heads * d.dq, q.data());
  } else {
    cpu::Linear(x, rows, hidden, w.q_proj.data(), d.heads * d.dq, q.data());
  }
  // Latent rows [rows x (r + dr)]: normed c_kv, roped k_pe.
  std::vector<float> kva(static_cast<size_t>(rows * d.row));
  cpu::Linear(x, rows, hidden, w.kv_a_proj_with_mqa.data(), d.row, kva.data());
  cpu::RmsNorm(kva.data(), d.row, rows, d.r, w.kv_a_layernorm.data(), eps, kva.data(), d.row);
  for (int64_t t = 0; t < rows; ++t) {
    const float* ct = cos + t * half;
    const float* st = sin + t * half;
    cpu::ApplyRope(kva.data() + t * d.row + d.r, d.dr, ct, st);
    for (int64_t h = 0; h < d.heads; ++h) {
      cpu::ApplyRope(q.data() + (t * d.heads + h) * d.dq + d.dn, d.dr, ct, st);
    }
  }

  std::vector<float> attn(static_cast<size_t>(rows * d.heads * d.dv));
  for (const SequenceSlice& s : slices) {
    float* cache = s.cache->LayerRows(layer);
    const int64_t start = s.cache->length();
    std::copy(kva.data() + s.row * d.row, kva.data() + (s.row + s.count) * d.row,
              cache + start * d.row);
    if (s.form == AttentionForm::kAbsorbed) {
      AttendAbsorbed(d, w, k.softmax_scale, q.data(), s, cache, attn.data());
    } else {
      AttendDecompressed(d, w, k.softmax_scale, q.data(), s, cache, attn.data());
    }
  }
  cpu::Linear(attn.data(), rows, d.heads * d.dv, w.o_proj.data(), hidden, out);
}

}  // namespace kubemoe::engine
