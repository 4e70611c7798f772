#include <cuda_runtime.h>

#include <cmath>
#include <string>

#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/small_ops_util.cuh"

namespace kubemoe::cuda {
namespace {

// Loads kWidth consecutive elements as floats: one 16-byte access when kWidth > 1.
template <int kWidth>
__device__ __forceinline__ void LoadRow(const float* p, float (&v)[kWidth]) {
  if constexpr (kWidth == 4) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    v[0] = q.x;
    v[1] = q.y;
    v[2] = q.z;
    v[3] = q.w;
  } else {
    static_assert(kWidth == 1, "f32 rows load 1 or 4 at a time");
    v[0] = *p;
  }
}

template <int kWidth>
__device__ __forceinline__ void LoadRow(const uint16_t* p, float (&v)[kWidth]) {
  if constexpr (kWidth == 8) {
    const uint4 q = *reinterpret_cast<const uint4*>(p);
    const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      v[2 * k] = __uint_as_float(words[k] << 16);
      v[2 * k + 1] = __uint_as_float(words[k] & 0xFFFF0000u);
    }
  } else {
    static_assert(kWidth == 1, "bf16 rows load 1 or 8 at a time");
    v[0] = __uint_as_float(static_cast<uint32_t>(*p) << 16);
  }
}

// One block per row (grid-stride over rows). kVec: every row start, weight and out row is
// 16-byte aligned and dim is a multiple of the vector width (checked on the host).
template <int kThreads, typename T, bool kVec>
__global__ void __launch_bounds__(kThreads)
    RmsNormKernel(const T* in, int64_t ld_in, int64_t rows, int64_t dim, const float* weight,
                  float eps, float* out, int64_t ld_out) {
  constexpr int kWidth = kVec ? static_cast<int>(16 / sizeof(T)) : 1;
  constexpr int kWarps = kThreads / 32;
  __shared__ double warp_sums[kWarps];
  __shared__ float row_inv;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* x = in + r * ld_in;
    float* y = out + r * ld_out;
    // Squares of the f32 values are exact in double, as in the CPU twin.
    double sum = 0.0;
    for (int64_t i = static_cast<int64_t>(threadIdx.x) * kWidth; i < dim;
         i += static_cast<int64_t>(kThreads) * kWidth) {
      float v[kWidth];
      LoadRow<kWidth>(x + i, v);
#pragma unroll
      for (int k = 0; k < kWidth; ++k) {
        const double d = v[k];
        sum += d * d;
      }
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xFFFFFFFFu, sum, offset);
    if (lane == 0) warp_sums[warp] = sum;
    __syncthreads();
    if (threadIdx.x == 0) {
      double total = 0.0;
      for (int w = 0; w < kWarps; ++w) total += warp_sums[w];
      row_inv = static_cast<float>(1.0 / sqrt(total / static_cast<double>(dim) + eps));
    }
    __syncthreads();
    const float inv = row_inv;
    for (int64_t i = static_cast<int64_t>(threadIdx.x) * kWidth; i < dim;
         i += static_cast<int64_t>(kThreads) * kWidth) {
      float v[kWidth];
      LoadRow<kWidth>(x + i, v);
      if constexpr (kVec) {
        // 16 bytes of weight and output at a time (a bf16 vector is 8 wide: two float4s).
#pragma unroll
        for (int k = 0; k < kWidth; k += 4) {
          const float4 w = *reinterpret_cast<const float4*>(weight + i + k);
          const float4 o = make_float4(w.x * (v[k] * inv), w.y * (v[k + 1] * inv),
                                       w.z * (v[k + 2] * inv), w.w * (v[k + 3] * inv));
          *reinterpret_cast<float4*>(y + i + k) = o;
        }
      } else {
        y[i] = weight[i] * (v[0] * inv);
      }
    }
  }
}

template <typename T, bool kVec>
void LaunchRmsNorm(const T* in, int64_t ld_in, int64_t rows, int64_t dim, const float* weight,
                   float eps, float* out, int64_t ld_out, cudaStream_t stream) {
  constexpr int kWidth = kVec ? static_cast<int>(16 / sizeof(T)) : 1;
  const int64_t units = (dim + kWidth - 1) / kWidth;  // vector loads per row
  const unsigned grid = GridFor(rows);
  if (units >= 512) {
    RmsNormKernel<256, T, kVec>
        <<<grid, 256, 0, stream>>>(in, ld_in, rows, dim, weight, eps, out, ld_out);
  } else if (units > 64) {
    RmsNormKernel<128, T, kVec>
        <<<grid, 128, 0, stream>>>(in, ld_in, rows, dim, weight, eps, out, ld_out);
  } else {
    RmsNormKernel<64, T, kVec>
        <<<grid, 64, 0, stream>>>(in, ld_in, rows, dim, weight, eps, out, ld_out);
  }
}

template <typename T>
Status RmsNormImpl(const char* name, const T* in, int64_t ld_in, int64_t rows, int64_t dim,
                   const float* weight, float eps, float* out, int64_t ld_out, Stream stream) {
  const std::string op = std::string("cuda::") + name;
  if (rows < 0) return InvalidArgument(op + ": rows (" + std::to_string(rows) + ") must be >= 0");
  if (dim <= 0) return InvalidArgument(op + ": dim (" + std::to_string(dim) + ") must be > 0");
  if (ld_in < dim) {
    return InvalidArgument(op + ": ld_in (" + std::to_string(ld_in) + ") must be >= dim (" +
                           std::to_string(dim) + ")");
  }
  if (ld_out < dim) {
    return InvalidArgument(op + ": ld_out (" + std::to_string(ld_out) + ") must be >= dim (" +
                           std::to_string(dim) + ")");
  }
  if (!(eps >= 0.0f) || !std::isfinite(eps)) {
    return InvalidArgument(op + ": eps (" + std::to_string(eps) + ") must be finite and >= 0");
  }
  if (rows == 0) return Status::Ok();
  if (in == nullptr) return InvalidArgument(op + ": in is null");
  if (weight == nullptr) return InvalidArgument(op + ": weight is null");
  if (out == nullptr) return InvalidArgument(op + ": out is null");
  const bool same = static_cast<const void*>(in) == static_cast<const void*>(out);
  if (same && (sizeof(T) != sizeof(float) || ld_in != ld_out)) {
    return InvalidArgument(op + ": in-place use needs f32 input and ld_in == ld_out (" +
                           std::to_string(ld_in) + " vs " + std::to_string(ld_out) + ")");
  }
  if (!same && Overlaps(in, SpanElements(rows, ld_in, dim) * sizeof(T), out,
                        SpanElements(rows, ld_out, dim) * sizeof(float))) {
    return InvalidArgument(op + ": in and out overlap without being the same array");
  }
  constexpr int kWidth = static_cast<int>(16 / sizeof(T));
  const bool vec = dim % kWidth == 0 && ld_in % kWidth == 0 && ld_out % 4 == 0 && Aligned16(in) &&
                   Aligned16(out) && Aligned16(weight);
  if (vec) {
    LaunchRmsNorm<T, true>(in, ld_in, rows, dim, weight, eps, out, ld_out, stream);
  } else {
    LaunchRmsNorm<T, false>(in, ld_in, rows, dim, weight, eps, out, ld_out, stream);
  }
  return LastLaunchError(op.c_str());
}

}  // namespace

Status RmsNorm(const float* in, int64_t ld_in, int64_t rows, int64_t dim, const float* weight,
               float eps, float* out, int64_t ld_out, Stream stream) {
  return RmsNormImpl("RmsNorm", in, ld_in, rows, dim, weight, eps, out, ld_out, stream);
}

Status RmsNormBf16In(const uint16_t* in, int64_t ld_in, int64_t rows, int64_t dim,
                     const float* weight, float eps, float* out, int64_t ld_out, Stream stream) {
  return RmsNormImpl("RmsNormBf16In", in, ld_in, rows, dim, weight, eps, out, ld_out, stream);
}

}  // namespace kubemoe::cuda
