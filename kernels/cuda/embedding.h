// Token embedding lookup on device: the CUDA twin of cpu::EmbedBf16 (kernels/cpu/embedding.h).
// Plain C++; the kernel is in embedding.cu.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "kernels/cuda/runtime.h"

namespace kubemoe::cuda {

// For each of `tokens` ids: out[t * ld_out + j] = table[ids[t] * hidden + j] widened exactly
// from bf16 to f32, for j < hidden; elements between rows (ld_out > hidden) are not written.
// The ids live on the device, so the host cannot check them: an id outside [0, vocab) gets a row
// of quiet NaN (0x7FC00000), and when bad_ids is not null the kernel adds the number of such ids
// to *bad_ids (a device int32 the caller zeroes and reads back when it wants to know).
// table ([vocab x hidden] bf16 bit patterns), ids, out and bad_ids are device pointers; out must
// not overlap the others. tokens == 0 launches nothing.
// Returns InvalidArgument naming the field for bad sizes, strides or pointers, else the launch
// error; the work completes asynchronously on `stream`.
Status EmbedBf16(const uint16_t* table, int64_t vocab, int64_t hidden, const int32_t* ids,
                 int64_t tokens, float* out, int64_t ld_out, int32_t* bad_ids, Stream stream);

}  // namespace kubemoe::cuda
