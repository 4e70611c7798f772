// Token embedding lookup on CPU: the CPU twin of cuda::EmbedBf16 (kernels/cuda/embedding.h).
#pragma once

#include <cstdint>

namespace kubemoe::cpu {

// For each of `tokens` ids: out[t * ld_out + j] = table[ids[t] * hidden + j] widened exactly
// from bf16 (bit patterns, the high half of an f32) to f32, for j < hidden; elements between rows
// (ld_out > hidden) are not written. An id outside [0, vocab) gets a row of quiet NaN, so a bad
// id poisons everything computed from its row instead of reading another token's embedding.
// Returns the number of such ids. REQUIRES: ld_out >= hidden.
int64_t EmbedBf16(const uint16_t* table, int64_t vocab, int64_t hidden, const int32_t* ids,
                  int64_t tokens, float* out, int64_t ld_out);

}  // namespace kubemoe::cpu
