#include <cuda_fp16.h>

#include "kernels/cuda/convert.h"

namespace kubemoe::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void Bf16ToF32Kernel(const uint16_t* in, float* out, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = __uint_as_float(static_cast<uint32_t>(in[i]) << 16);
  }
}

__global__ void F16ToF32Kernel(const uint16_t* in, float* out, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = __half2float(__ushort_as_half(in[i]));
  }
}

int GridFor(size_t n) {
  const size_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65535 ? (blocks == 0 ? 1 : blocks) : 65535);
}

}  // namespace

Status Bf16ToF32(const uint16_t* in, float* out, size_t n, Stream stream) {
  if (n == 0) return Status::Ok();
  Bf16ToF32Kernel<<<GridFor(n), kThreads, 0, stream>>>(in, out, n);
  return LastLaunchError("bf16 -> f32 conversion kernel");
}

Status F16ToF32(const uint16_t* in, float* out, size_t n, Stream stream) {
  if (n == 0) return Status::Ok();
  F16ToF32Kernel<<<GridFor(n), kThreads, 0, stream>>>(in, out, n);
  return LastLaunchError("f16 -> f32 conversion kernel");
}

}  // namespace kubemoe::cuda
