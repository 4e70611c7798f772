// CUDA twin of kernels/cpu/convert.h: the same conversions on device memory, on a stream.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace kubemoe::cuda {

// REQUIRES: in and out are device pointers to n elements; they must not overlap.
// Returns the launch error, if any; the work completes asynchronously on `stream`.
cudaError_t Bf16ToF32(const uint16_t* in, float* out, size_t n, cudaStream_t stream);
cudaError_t F16ToF32(const uint16_t* in, float* out, size_t n, cudaStream_t stream);

}  // namespace kubemoe::cuda
