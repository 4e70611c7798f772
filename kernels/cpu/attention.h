// Causal scaled-dot-product attention on CPU (fp32), in the one shape both MLA forms need:
// a block of query rows against one set of key/value rows that every query row shares.
//   - Decompressed MLA (prefill): per head, query rows = the new tokens, keys/values = that
//     head's decompressed [k_nope | k_pe] and v of every cached token.
//   - Absorbed MLA (decode): per token, query rows = the heads' [q_nope W_UK | q_pe], keys = the
//     latent cache rows [c_kv | k_pe], values = the c_kv part of the same rows.
#pragma once

#include <cstdint>

namespace kubemoe::cpu {

// Floats of scratch Attention needs.
inline int64_t AttentionScratchFloats(int64_t n_q, int64_t n_kv) { return n_q * n_kv; }

// For each query row i (of n_q, stride ldq, d_k floats) attending to the key rows
// j < kv_limit[i] (of n_kv; stride ldk, d_k floats) and value rows (stride ldv, d_v floats):
//   p = softmax_j(scale * q_i . k_j), out_i = sum_j p_j v_j   (row stride ldo, d_v floats).
// The softmax subtracts the row max and runs in fp32. REQUIRES: 1 <= kv_limit[i] <= n_kv;
// scratch holds AttentionScratchFloats(n_q, n_kv) floats; out does not overlap the inputs.
void Attention(const float* q, int64_t ldq, int64_t n_q, const int64_t* kv_limit, const float* k,
               int64_t ldk, const float* v, int64_t ldv, int64_t n_kv, int64_t d_k, int64_t d_v,
               float scale, float* out, int64_t ldo, float* scratch);

}  // namespace kubemoe::cpu
