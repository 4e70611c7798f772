#include "engine/mla.h"

#include <algorithm>
#include <optional>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "layers/parallel_linear.h"

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

// Decompressed attention of one sequence: expands every cached latent through kv_b_proj, then
// attends head by head, heads in parallel.
void AttendDecompressed(ThreadPool& pool, const Dims& d, const AttentionWeights& w, float scale,
                        const float* q, const SequenceSlice& s, const float* cache,
                        float* attn_out) {
  const int64_t start = s.cache->length();
  const int64_t len = start + s.count;
  std::vector<float> kv(static_cast<size_t>(len * d.heads * d.kvb));
  layers::ParallelLinear(pool, cache, d.row, len, w.kv_b_proj.matrix(), kv.data(), d.heads * d.kvb);
  std::vector<int64_t> limits(static_cast<size_t>(s.count));
  for (int64_t i = 0; i < s.count; ++i) limits[static_cast<size_t>(i)] = start + i + 1;
  pool.ParallelFor(d.heads, [&](int64_t h) {
    std::vector<float> keys(static_cast<size_t>(len * d.dq));
    std::vector<float> scratch(static_cast<size_t>(cpu::AttentionScratchFloats(s.count, len)));
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
  });
}

// Heads of one token that attend in one pass over a sequence's cache (one sgemm). Fixed, not
// derived from the thread count, so the results do not depend on it; 4 lets a 2-16 thread pool
// share one sequence's 16 heads while reading the cache 4 times, not 16.
constexpr int64_t kAbsorbedHeadsPerTask = 4;

// Absorbed attention of every sequence in `seqs` at once: scores against the latent rows
// themselves. W_UK is applied to the queries of all their rows in one product per head, each
// sequence then attends to its own cache (kAbsorbedHeadsPerTask heads of a token per pass over
// the cache), and W_UV is applied to all the probability-weighted latents in one product per
// head.
void AttendAbsorbed(ThreadPool& pool, const Dims& d, const AttentionWeights& w, float scale,
                    const float* q, std::span<const SequenceSlice> seqs, int64_t layer,
                    float* attn_out) {
  std::vector<int64_t> rows;       // batch rows of the sequences, in order
  std::vector<int64_t> first_row;  // per sequence, its first index into `rows`
  for (const SequenceSlice& s : seqs) {
    first_row.push_back(static_cast<int64_t>(rows.size()));
    for (int64_t i = 0; i < s.count; ++i) rows.push_back(s.row + i);
  }
  const auto n = static_cast<int64_t>(rows.size());
  if (n == 0) return;
  // q_abs [n x heads x (r + dr)]: per head, [q_nope W_UK_h | q_pe].
  std::vector<float> q_abs(static_cast<size_t>(n * d.heads * d.row));
  pool.ParallelFor(d.heads, [&](int64_t h) {
    std::vector<float> q_nope(static_cast<size_t>(n * d.dn));
    for (int64_t i = 0; i < n; ++i) {
      const float* qi = q + (rows[static_cast<size_t>(i)] * d.heads + h) * d.dq;
      std::copy(qi, qi + d.dn, q_nope.data() + i * d.dn);
      std::copy(qi + d.dn, qi + d.dq, q_abs.data() + (i * d.heads + h) * d.row + d.r);
    }
    layers::ParallelLinear(pool, q_nope.data(), d.dn, n,
                           w.w_uk_t.Rows(h * d.r, (h + 1) * d.r).matrix(), q_abs.data() + h * d.row,
                           d.heads * d.row);
  });
  // latent [n x heads x r].
  std::vector<float> latent(static_cast<size_t>(n * d.heads * d.r));
  const auto n_seqs = static_cast<int64_t>(seqs.size());
  const int64_t ranges = (d.heads + kAbsorbedHeadsPerTask - 1) / kAbsorbedHeadsPerTask;
  pool.ParallelFor(n_seqs * ranges, [&](int64_t task) {
    const SequenceSlice& s = seqs[static_cast<size_t>(task / ranges)];
    const int64_t h0 = (task % ranges) * kAbsorbedHeadsPerTask;
    const int64_t h1 = std::min(d.heads, h0 + kAbsorbedHeadsPerTask);
    const int64_t start = s.cache->length();
    std::vector<float> widened;
    const float* cache = s.cache->RowsF32(layer, start + s.count, &widened);
    std::vector<int64_t> limits(static_cast<size_t>(h1 - h0));
    std::vector<float> scratch(
        static_cast<size_t>(cpu::AttentionScratchFloats(h1 - h0, start + s.count)));
    for (int64_t i = 0; i < s.count; ++i) {
      const int64_t row = (first_row[static_cast<size_t>(task / ranges)] + i) * d.heads + h0;
      std::fill(limits.begin(), limits.end(), start + i + 1);
      cpu::Attention(q_abs.data() + row * d.row, d.row, h1 - h0, limits.data(), cache, d.row, cache,
                     d.row, start + i + 1, d.row, d.r, scale, latent.data() + row * d.r, d.r,
                     scratch.data());
    }
  });
  // out_h = latent_h W_UV_h^T, W_UV_h = rows [h*kvb + dn, (h+1)*kvb) of kv_b_proj.
  pool.ParallelFor(d.heads, [&](int64_t h) {
    std::vector<float> out_h(static_cast<size_t>(n * d.dv));
    layers::ParallelLinear(pool, latent.data() + h * d.r, d.heads * d.r, n,
                           w.kv_b_proj.Rows(h * d.kvb + d.dn, (h + 1) * d.kvb).matrix(),
                           out_h.data(), d.dv);
    for (int64_t i = 0; i < n; ++i) {
      std::copy(out_h.data() + i * d.dv, out_h.data() + (i + 1) * d.dv,
                attn_out + (rows[static_cast<size_t>(i)] * d.heads + h) * d.dv);
    }
  });
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

void MlaForward(ThreadPool& pool, const ModelConfig& c, const AttentionWeights& w,
                const MlaConstants& k, int64_t layer, const float* x, int64_t rows,
                std::span<const SequenceSlice> slices, const float* cos, const float* sin,
                float* out) {
  const Dims d(c);
  // The latent norms (q_a_layernorm, kv_a_layernorm) use DeepseekV2RMSNorm's default eps 1e-6
  // in the original code and in transformers, whatever rms_norm_eps (the decoder norms') says.
  const float eps = kLatentNormEps;
  const int64_t half = d.dr / 2;

  // Queries [rows x heads x (dn + dr)].
  std::vector<float> q(static_cast<size_t>(rows * d.heads * d.dq));
  if (c.q_lora_rank.has_value()) {
    const int64_t ql = *c.q_lora_rank;
    std::vector<float> qa(static_cast<size_t>(rows * ql));
    layers::ParallelLinear(pool, x, rows, w.q_a_proj, qa.data());
    cpu::RmsNorm(qa.data(), ql, rows, ql, w.q_a_layernorm.data(), eps, qa.data(), ql);
    layers::ParallelLinear(pool, qa.data(), rows, w.q_b_proj, q.data());
  } else {
    layers::ParallelLinear(pool, x, rows, w.q_proj, q.data());
  }
  // Latent rows [rows x (r + dr)]: normed c_kv, roped k_pe.
  std::vector<float> kva(static_cast<size_t>(rows * d.row));
  layers::ParallelLinear(pool, x, rows, w.kv_a_proj_with_mqa, kva.data());
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
  std::vector<SequenceSlice> absorbed;
  for (const SequenceSlice& s : slices) {
    s.cache->WriteRows(layer, s.cache->length(), kva.data() + s.row * d.row, s.count);
    if (s.form == AttentionForm::kAbsorbed) {
      absorbed.push_back(s);
    } else {
      std::vector<float> widened;
      const float* cache = s.cache->RowsF32(layer, s.cache->length() + s.count, &widened);
      AttendDecompressed(pool, d, w, k.softmax_scale, q.data(), s, cache, attn.data());
    }
  }
  AttendAbsorbed(pool, d, w, k.softmax_scale, q.data(), absorbed, layer, attn.data());
  layers::ParallelLinear(pool, attn.data(), rows, w.o_proj, out);
}

}  // namespace kubemoe::engine
