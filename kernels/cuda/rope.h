// Rotary position embedding on device: the CUDA twin of cpu::RopeCosSin followed by
// cpu::ApplyRope (kernels/cpu/rope.h), fused: cos/sin are computed on device from each token's
// position and the inverse frequencies (cpu::RopeInvFreq, YaRN included), and the rope slices of
// all of the token's rows are rotated in place. Plain C++; the kernel is in rope.cu.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "kernels/cuda/runtime.h"

namespace kubemoe::cuda {

// Rotates `tokens * rows_per_token` vectors of `dim` floats in place. Row h of token t (the
// token's h-th head; rows_per_token == 1 for the shared key) starts at x + (t * rows_per_token +
// h) * ld, so x points at the first row's rope slice and ld is the distance between rows: the
// query's rope slices are x = q + qk_nope_head_dim, ld = q_head_dim, rows_per_token = heads.
// Token t's angles are the fp32 products float(positions[t]) * inv_freq[i], i < dim / 2, and
// cos_i = cosf(angle) * scale, sin_i likewise (scale: cpu::RopeCosSinScale). Each vector is
// rotated and de-interleaved exactly as cpu::ApplyRope:
//   out[i] = x[2i] * cos_i - x[2i+1] * sin_i,   out[i + dim/2] = x[2i+1] * cos_i + x[2i] * sin_i.
// Elements outside the rope slices are not touched.
// Accuracy: the angle is the same fp32 value as on the CPU; the device cosf/sinf are within 2 ulp
// (CUDA's documented bound, full range) where glibc's are within 1, and the rotation may be
// contracted to fused multiply-adds, so outputs differ from the CPU twin by a few ulp of
// max(1, scale) * (|x[2i]| + |x[2i+1]|).
// x, positions (tokens int64) and inv_freq (dim / 2 floats) are device pointers; positions and
// inv_freq must not overlap x. tokens == 0 launches nothing.
// Returns InvalidArgument naming the field unless dim is even and in [2, 2048], ld >= dim,
// rows_per_token >= 1 (and < 2^31), tokens >= 0, scale is finite and the pointers are not null;
// else the launch error. The work completes asynchronously on `stream`.
Status ApplyRope(float* x, int64_t ld, int64_t tokens, int64_t rows_per_token, int64_t dim,
                 const int64_t* positions, const float* inv_freq, float scale, Stream stream);

}  // namespace kubemoe::cuda
