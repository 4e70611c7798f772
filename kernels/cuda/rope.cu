#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "kernels/cuda/rope.h"
#include "kernels/cuda/small_ops_util.cuh"

namespace kubemoe::cuda {
namespace {

constexpr int kMaxDim = 2048;      // half <= 1024: one thread per rotated pair of a row
constexpr int kPassThreads = 256;  // threads that rotate rows together when rows are short

// One block per token (grid-stride over tokens). The token's cos/sin go to shared memory once;
// then its rows are rotated `rows_per_pass` at a time, one thread per pair. Every thread of a
// pass loads its pair before any thread stores (the de-interleave writes element i, which
// another thread reads as part of pair i / 2), and each pass covers whole rows, so no row is
// read after part of it was rewritten.
__global__ void RopeKernel(float* x, int64_t ld, int64_t tokens, int rows_per_token, int half,
                           int rows_per_pass, const int64_t* positions, const float* inv_freq,
                           float scale) {
  extern __shared__ float table[];  // cos[half], then sin[half]
  float* cos_t = table;
  float* sin_t = table + half;
  const int row_in_pass = static_cast<int>(threadIdx.x) / half;
  const int i = static_cast<int>(threadIdx.x) % half;
  const bool active = row_in_pass < rows_per_pass;
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x) {
    __syncthreads();  // the previous token's rows are done with the table
    const auto position = static_cast<float>(positions[t]);
    for (int k = static_cast<int>(threadIdx.x); k < half; k += static_cast<int>(blockDim.x)) {
      const float angle = position * inv_freq[k];  // the fp32 product, as on the CPU
      float s;
      float c;
      sincosf(angle, &s, &c);
      cos_t[k] = c * scale;
      sin_t[k] = s * scale;
    }
    __syncthreads();
    float* token_rows = x + t * rows_per_token * ld;
    for (int h0 = 0; h0 < rows_per_token; h0 += rows_per_pass) {
      const int h = h0 + row_in_pass;
      const bool live = active && h < rows_per_token;
      float* row = token_rows + static_cast<int64_t>(h) * ld;
      float a = 0.0f;
      float b = 0.0f;
      if (live) {
        a = row[2 * i];
        b = row[2 * i + 1];
      }
      __syncthreads();
      if (live) {
        const float c = cos_t[i];
        const float s = sin_t[i];
        row[i] = a * c - b * s;
        row[i + half] = b * c + a * s;
      }
    }
  }
}

}  // namespace

Status ApplyRope(float* x, int64_t ld, int64_t tokens, int64_t rows_per_token, int64_t dim,
                 const int64_t* positions, const float* inv_freq, float scale, Stream stream) {
  const std::string op = "cuda::ApplyRope";
  if (dim < 2 || dim > kMaxDim || dim % 2 != 0) {
    return InvalidArgument(op + ": dim (" + std::to_string(dim) + ") must be even and in [2, " +
                           std::to_string(kMaxDim) + "]");
  }
  if (ld < dim) {
    return InvalidArgument(op + ": ld (" + std::to_string(ld) + ") must be >= dim (" +
                           std::to_string(dim) + ")");
  }
  if (tokens < 0) {
    return InvalidArgument(op + ": tokens (" + std::to_string(tokens) + ") must be >= 0");
  }
  if (rows_per_token < 1 || rows_per_token > INT32_MAX) {
    return InvalidArgument(op + ": rows_per_token (" + std::to_string(rows_per_token) +
                           ") must be in [1, 2^31)");
  }
  if (!std::isfinite(scale)) {
    return InvalidArgument(op + ": scale (" + std::to_string(scale) + ") must be finite");
  }
  if (tokens == 0) return Status::Ok();
  if (x == nullptr) return InvalidArgument(op + ": x is null");
  if (positions == nullptr) return InvalidArgument(op + ": positions is null");
  if (inv_freq == nullptr) return InvalidArgument(op + ": inv_freq is null");
  const int64_t x_bytes = SpanElements(tokens * rows_per_token, ld, dim) * 4;
  if (Overlaps(x, x_bytes, positions, tokens * 8) || Overlaps(x, x_bytes, inv_freq, dim / 2 * 4)) {
    return InvalidArgument(op + ": x overlaps positions or inv_freq");
  }
  const int half = static_cast<int>(dim / 2);
  const int rows_per_pass = static_cast<int>(
      std::min<int64_t>(rows_per_token, half >= kPassThreads ? 1 : kPassThreads / half));
  const int threads = (rows_per_pass * half + 31) / 32 * 32;  // <= 1024: half <= 1024
  const size_t shared = 2 * static_cast<size_t>(half) * sizeof(float);
  RopeKernel<<<GridFor(tokens), threads, shared, stream>>>(
      x, ld, tokens, static_cast<int>(rows_per_token), half, rows_per_pass, positions, inv_freq,
      scale);
  return LastLaunchError(op.c_str());
}

}  // namespace kubemoe::cuda
