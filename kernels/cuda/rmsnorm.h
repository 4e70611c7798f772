// RMSNorm on device: the CUDA twin of cpu::RmsNorm (kernels/cpu/rmsnorm.h). Plain C++; the
// kernels are in rmsnorm.cu.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "kernels/cuda/runtime.h"

namespace kubemoe::cuda {

// For each of `rows` rows of `dim` floats (row strides ld_in / ld_out, in elements):
// out = weight * (x * inv) with inv = float(1 / sqrt(mean(x^2) + eps)), the mean of squares
// accumulated in double as the CPU twin does; only the summation order differs from it.
// All pointers are device pointers; weight holds dim floats. in and out may be the same array
// with the same stride; otherwise they must not overlap. rows == 0 launches nothing.
// Returns InvalidArgument naming the field for bad sizes, strides, pointers or eps (eps must be
// finite and >= 0), else the launch error; the work completes asynchronously on `stream`.
Status RmsNorm(const float* in, int64_t ld_in, int64_t rows, int64_t dim, const float* weight,
               float eps, float* out, int64_t ld_out, Stream stream);

// The same with bf16 input (bit patterns, widened exactly to f32 on load) and f32 output, for
// rows read straight from bf16 activations. in and out must not overlap.
Status RmsNormBf16In(const uint16_t* in, int64_t ld_in, int64_t rows, int64_t dim,
                     const float* weight, float eps, float* out, int64_t ld_out, Stream stream);

}  // namespace kubemoe::cuda
