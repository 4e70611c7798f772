#include <cuda_runtime.h>

#include "kernels/cuda/random_fill.h"

namespace kubemoe::cuda {
namespace {

__device__ __forceinline__ uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

__global__ void FillUniformBf16Kernel(uint16_t* out, size_t n, uint64_t seed, float lo,
                                      float span) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const uint64_t bits = SplitMix64(seed ^ (i * 0xD1B54A32D192ED03ull));
    const float unit = static_cast<float>(bits >> 40) * (1.0f / 16777216.0f);  // 24 bits
    const float value = lo + unit * span;
    // Round to nearest even into bf16.
    const uint32_t u = __float_as_uint(value);
    out[i] = static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
  }
}

}  // namespace

Status FillUniformBf16(uint16_t* out, size_t n, uint64_t seed, float lo, float hi, Stream stream) {
  if (!(hi > lo)) return InvalidArgument("random fill: hi must exceed lo");
  if (n == 0) return Status::Ok();
  const size_t blocks = (n + 255) / 256;
  FillUniformBf16Kernel<<<static_cast<unsigned>(blocks < 65536 ? blocks : 65536), 256, 0, stream>>>(
      out, n, seed, lo, hi - lo);
  return LastLaunchError("random fill kernel");
}

}  // namespace kubemoe::cuda
