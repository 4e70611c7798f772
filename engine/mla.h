// Multi-head latent attention (MLA) of one DeepSeek-V2 layer over a batch of sequences, with the
// latent KV cache. Two mathematically equal forms:
//   decompressed: kv_b_proj expands every cached c_kv into per-head [k_nope | v], then ordinary
//                 attention (used for prefill, where many queries share the expansion);
//   absorbed:     W_UK (the k_nope rows of kv_b_proj) is folded into the query, so scores are
//                 taken against the cached rows directly, and W_UV is applied after the
//                 probability-weighted sum of latents (used for decode: nothing is expanded).
//                 W_UK and W_UV are applied to the rows of every absorbed sequence of the batch
//                 at once, so a decode step streams them once, not once per sequence.
// Heads run in parallel on the pool; projections split their output columns across it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "common/thread_pool.h"
#include "engine/kv_cache.h"
#include "engine/weights.h"
#include "model/config.h"

namespace kubemoe::engine {

enum class AttentionForm { kDecompressed, kAbsorbed };

// One sequence's slice of a batch: rows [row, row + count) of the batch are its new tokens at
// positions [cache->length(), cache->length() + count).
// eps of MLA's two latent RMSNorms, fixed by the model definition (not config.rms_norm_eps).
inline constexpr float kLatentNormEps = 1e-6f;

struct SequenceSlice {
  LatentKvCache* cache = nullptr;
  int64_t row = 0;
  int64_t count = 0;
  AttentionForm form = AttentionForm::kDecompressed;
};

// Per-model constants derived from the config once: RoPE frequencies and scales.
struct MlaConstants {
  std::vector<float> inv_freq;  // qk_rope_head_dim / 2
  float cos_sin_scale = 1.0f;   // yarn mscale ratio
  float softmax_scale = 1.0f;   // q_head_dim^-0.5 * mscale^2
  static MlaConstants FromConfig(const ModelConfig& config);
};

// Computes o_proj(attention) for the `rows` rows of x (already input-normed, [rows x hidden]) and
// writes it to out [rows x hidden]; writes each new token's latent row into its cache at `layer`
// (the caller advances the caches once every layer is done). cos/sin hold qk_rope_head_dim / 2
// floats per batch row (their positions' rotary values, already scaled).
// REQUIRES: slices cover the rows; each cache has room for its new tokens.
void MlaForward(ThreadPool& pool, const ModelConfig& config, const AttentionWeights& w,
                const MlaConstants& k, int64_t layer, const float* x, int64_t rows,
                std::span<const SequenceSlice> slices, const float* cos, const float* sin,
                float* out);

}  // namespace kubemoe::engine
