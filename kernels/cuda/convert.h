// CUDA twin of kernels/cpu/convert.h: the same conversions on device memory, on a stream. The
// harness (tests/kernel_ops/convert_cases.cc) compares the two on every 16-bit pattern.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "kernels/cuda/runtime.h"

namespace kubemoe::cuda {

// REQUIRES: in and out are device pointers to n elements; they must not overlap.
// Returns the launch error, if any; the work completes asynchronously on `stream`.
Status Bf16ToF32(const uint16_t* in, float* out, size_t n, Stream stream);
Status F16ToF32(const uint16_t* in, float* out, size_t n, Stream stream);

}  // namespace kubemoe::cuda
