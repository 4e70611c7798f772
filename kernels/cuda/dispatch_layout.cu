#include <cuda_runtime.h>

#include <string>

#include "kernels/cuda/dispatch_layout.h"

namespace kubemoe::cuda {
namespace {

constexpr int kChunk = 512;  // routes per block in the layout passes
constexpr unsigned kFullMask = 0xffffffffu;

__global__ void CountDeviceTokensKernel(const int32_t* __restrict__ ids, int64_t num_tokens,
                                        int32_t top_k, int32_t num_experts,
                                        const int32_t* __restrict__ expert_device,
                                        int32_t* __restrict__ device_counts) {
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < num_tokens;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int32_t* row = ids + t * top_k;
    for (int32_t j = 0; j < top_k; ++j) {
      if (row[j] < 0 || row[j] >= num_experts) continue;
      const int32_t d = expert_device[row[j]];
      bool seen = false;
      for (int32_t i = 0; i < j && !seen; ++i) {
        seen = row[i] >= 0 && row[i] < num_experts && expert_device[row[i]] == d;
      }
      if (!seen) atomicAdd(&device_counts[d], 1);
    }
  }
}

// Pass 1, one block per chunk of kChunk routes: each valid route's rank among the earlier routes
// of its chunk with the same expert (stored in route_rows for pass 3), and the chunk's count per
// expert. Warps take their turn in order, so ranks follow route order: the layout is stable and
// the same on every run.
__global__ void ChunkRanksKernel(const int32_t* __restrict__ ids, int64_t routes,
                                 int32_t num_experts, int32_t* __restrict__ local_rank,
                                 int32_t* __restrict__ chunk_counts) {
  extern __shared__ int32_t hist[];  // [num_experts]
  for (int32_t e = threadIdx.x; e < num_experts; e += blockDim.x) hist[e] = 0;
  __syncthreads();
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kChunk + threadIdx.x;
  const int32_t e = r < routes ? ids[r] : -1;
  const bool valid = e >= 0 && e < num_experts;
  const int32_t key = valid ? e : -1;
  const unsigned same = __match_any_sync(kFullMask, key);
  const int32_t rank_in_warp = __popc(same & ((1u << lane) - 1));
  const int leader = __ffs(same) - 1;
  int32_t base = 0;
  for (int w = 0; w < kChunk / 32; ++w) {
    if (warp == w && valid && lane == leader) {
      base = hist[e];
      hist[e] = base + __popc(same);
    }
    __syncthreads();
  }
  base = __shfl_sync(kFullMask, base, leader);
  if (r < routes) local_rank[r] = valid ? base + rank_in_warp : -1;
  for (int32_t x = threadIdx.x; x < num_experts; x += blockDim.x) {
    chunk_counts[static_cast<int64_t>(blockIdx.x) * num_experts + x] = hist[x];
  }
}

// Pass 2, one block: per expert the total over chunks (expert_counts), the exclusive prefix sums
// over experts (expert_offsets), and each chunk's first row per expert, in place of its count.
__global__ void ScanChunksKernel(int32_t* __restrict__ chunk_counts, int64_t chunks,
                                 int32_t num_experts, int32_t* __restrict__ counts,
                                 int32_t* __restrict__ offsets) {
  __shared__ int32_t warp_sums[32];
  __shared__ int32_t carry;
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int warps = blockDim.x / 32;
  for (int32_t e = threadIdx.x; e < num_experts; e += blockDim.x) {
    int32_t total = 0;
    for (int64_t c = 0; c < chunks; ++c) total += chunk_counts[c * num_experts + e];
    counts[e] = total;
  }
  if (threadIdx.x == 0) {
    carry = 0;
    offsets[0] = 0;
  }
  __syncthreads();
  for (int32_t base = 0; base < num_experts; base += blockDim.x) {
    const int32_t i = base + threadIdx.x;
    int32_t x = i < num_experts ? counts[i] : 0;  // this thread wrote counts[i] above
    for (int d = 1; d < 32; d <<= 1) {
      const int32_t up = __shfl_up_sync(kFullMask, x, d);
      if (lane >= d) x += up;
    }
    if (lane == 31) warp_sums[warp] = x;
    __syncthreads();
    if (warp == 0) {
      int32_t y = lane < warps ? warp_sums[lane] : 0;
      for (int d = 1; d < 32; d <<= 1) {
        const int32_t up = __shfl_up_sync(kFullMask, y, d);
        if (lane >= d) y += up;
      }
      if (lane < warps) warp_sums[lane] = y;
    }
    __syncthreads();
    x += (warp > 0 ? warp_sums[warp - 1] : 0) + carry;
    if (i < num_experts) offsets[i + 1] = x;
    __syncthreads();
    if (threadIdx.x == blockDim.x - 1) carry = x;
    __syncthreads();
  }
  for (int32_t e = threadIdx.x; e < num_experts; e += blockDim.x) {
    int32_t running = offsets[e];
    for (int64_t c = 0; c < chunks; ++c) {
      const int32_t n = chunk_counts[c * num_experts + e];
      chunk_counts[c * num_experts + e] = running;
      running += n;
    }
  }
}

// Pass 3, one thread per route: row = the chunk's first row for the expert + the local rank.
__global__ void PlaceRoutesKernel(const int32_t* __restrict__ ids, int64_t routes,
                                  int32_t num_experts, const int32_t* __restrict__ chunk_rows,
                                  int32_t* __restrict__ route_rows,
                                  int32_t* __restrict__ row_routes) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kChunk + threadIdx.x;
  if (r >= routes) return;
  const int32_t local = route_rows[r];
  if (local < 0) return;  // invalid id: stays -1
  const int32_t row = chunk_rows[static_cast<int64_t>(blockIdx.x) * num_experts + ids[r]] + local;
  route_rows[r] = row;
  row_routes[row] = static_cast<int32_t>(r);
}

// One warp per row; uint4 = 8 bf16 when the row allows it.
__global__ void PermuteRowsKernel(const uint16_t* __restrict__ hidden,
                                  const int32_t* __restrict__ row_routes, int64_t rows,
                                  int32_t top_k, int64_t hidden_size, uint16_t* __restrict__ out) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const int64_t token = row_routes[row] / top_k;
  const uint16_t* src = hidden + token * hidden_size;
  uint16_t* dst = out + row * hidden_size;
  if (hidden_size % 8 == 0) {
    const uint4* s = reinterpret_cast<const uint4*>(src);
    uint4* d = reinterpret_cast<uint4*>(dst);
    for (int64_t i = lane; i < hidden_size / 8; i += 32) d[i] = s[i];
  } else {
    for (int64_t i = lane; i < hidden_size; i += 32) dst[i] = src[i];
  }
}

__device__ __forceinline__ float Bf16Low(uint32_t pair) { return __uint_as_float(pair << 16); }
__device__ __forceinline__ float Bf16High(uint32_t pair) { return __uint_as_float(pair & 0xffff0000u); }

// Block (token, column tile): each thread owns 8 consecutive columns (one uint4 of each route's
// row) and loads all the token's routes before summing, so the k row reads are in flight together
// (one warp walking a whole row issued them one after another and waited on each: 62 us for 128
// tokens on an H200). A route with row -1 contributes +0.
constexpr int kCombineThreads = 128;

__global__ void CombineRowsKernel(const uint16_t* __restrict__ expert_out,
                                  const int32_t* __restrict__ route_rows,
                                  const float* __restrict__ weights, int32_t top_k,
                                  int64_t hidden_size, float* __restrict__ out) {
  const int64_t token = blockIdx.x;
  const int32_t* rows = route_rows + token * top_k;
  const float* w = weights + token * top_k;
  float* o = out + token * hidden_size;
  if (hidden_size % 8 == 0) {
    const int64_t c = (static_cast<int64_t>(blockIdx.y) * kCombineThreads + threadIdx.x) * 8;
    if (c >= hidden_size) return;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
#pragma unroll 8
    for (int32_t j = 0; j < top_k; ++j) {
      const int32_t row = rows[j];
      const uint4 v = row >= 0
                          ? *reinterpret_cast<const uint4*>(expert_out + row * hidden_size + c)
                          : make_uint4(0, 0, 0, 0);
      const float wj = row >= 0 ? w[j] : 0.0f;
      acc[0] = __fadd_rn(acc[0], __fmul_rn(wj, Bf16Low(v.x)));
      acc[1] = __fadd_rn(acc[1], __fmul_rn(wj, Bf16High(v.x)));
      acc[2] = __fadd_rn(acc[2], __fmul_rn(wj, Bf16Low(v.y)));
      acc[3] = __fadd_rn(acc[3], __fmul_rn(wj, Bf16High(v.y)));
      acc[4] = __fadd_rn(acc[4], __fmul_rn(wj, Bf16Low(v.z)));
      acc[5] = __fadd_rn(acc[5], __fmul_rn(wj, Bf16High(v.z)));
      acc[6] = __fadd_rn(acc[6], __fmul_rn(wj, Bf16Low(v.w)));
      acc[7] = __fadd_rn(acc[7], __fmul_rn(wj, Bf16High(v.w)));
    }
    float4* dst = reinterpret_cast<float4*>(o + c);
    dst[0] = make_float4(acc[0], acc[1], acc[2], acc[3]);
    dst[1] = make_float4(acc[4], acc[5], acc[6], acc[7]);
  } else {
    const int64_t c = static_cast<int64_t>(blockIdx.y) * kCombineThreads + threadIdx.x;
    if (c >= hidden_size) return;
    float acc = 0.0f;
    for (int32_t j = 0; j < top_k; ++j) {
      const int32_t row = rows[j];
      if (row < 0) continue;
      const float x = __uint_as_float(static_cast<uint32_t>(expert_out[row * hidden_size + c]) << 16);
      acc = __fadd_rn(acc, __fmul_rn(w[j], x));
    }
    o[c] = acc;
  }
}

}  // namespace

int64_t DispatchLayoutScratchInts(int64_t num_tokens, int32_t top_k, int32_t num_experts) {
  const int64_t routes = num_tokens * top_k;
  const int64_t chunks = (routes + kChunk - 1) / kChunk;
  return (chunks > 0 ? chunks : 1) * num_experts;
}

namespace {

unsigned GridFor(int64_t items, int threads) {
  const int64_t blocks = (items + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 ? 65535 : blocks));
}

}  // namespace

Status DispatchLayout(const int32_t* expert_ids, int64_t num_tokens, int32_t top_k,
                      int32_t num_experts, const int32_t* expert_device, int32_t num_devices,
                      const DispatchLayoutOutputs& out, Stream stream) {
  if (num_tokens < 0 || top_k < 1 || num_experts < 1 || num_devices < 0) {
    return InvalidArgument("dispatch layout: num_tokens >= 0, top_k >= 1, num_experts >= 1 and "
                           "num_devices >= 0 are required");
  }
  const int64_t routes = num_tokens * top_k;
  if (routes > 0x7fffffffLL) {
    return InvalidArgument("dispatch layout: " + std::to_string(routes) +
                           " routes exceed the 32-bit row index");
  }
  if (out.expert_counts == nullptr || out.expert_offsets == nullptr || out.route_rows == nullptr ||
      out.row_routes == nullptr || out.chunk_scratch == nullptr ||
      (expert_device != nullptr && out.device_token_counts == nullptr)) {
    return InvalidArgument("dispatch layout: an output array is missing");
  }
  if (num_experts > kDispatchLayoutMaxExperts) {
    return InvalidArgument("dispatch layout: num_experts=" + std::to_string(num_experts) +
                           " exceeds " + std::to_string(kDispatchLayoutMaxExperts) +
                           " (one chunk's per-expert counts live in shared memory)");
  }
  const int64_t chunks = (routes + kChunk - 1) / kChunk;
  if (routes == 0) {
    if (cudaMemsetAsync(out.expert_counts, 0, sizeof(int32_t) * num_experts, stream) != cudaSuccess ||
        cudaMemsetAsync(out.expert_offsets, 0, sizeof(int32_t) * (num_experts + 1), stream) !=
            cudaSuccess) {
      return LastLaunchError("dispatch layout: clearing counts");
    }
  } else {
    const size_t hist_bytes = sizeof(int32_t) * static_cast<size_t>(num_experts);
    ChunkRanksKernel<<<static_cast<unsigned>(chunks), kChunk, hist_bytes, stream>>>(
        expert_ids, routes, num_experts, out.route_rows, out.chunk_scratch);
    ScanChunksKernel<<<1, 1024, 0, stream>>>(out.chunk_scratch, chunks, num_experts,
                                             out.expert_counts, out.expert_offsets);
    PlaceRoutesKernel<<<static_cast<unsigned>(chunks), kChunk, 0, stream>>>(
        expert_ids, routes, num_experts, out.chunk_scratch, out.route_rows, out.row_routes);
  }
  if (expert_device != nullptr && num_devices > 0) {
    if (cudaMemsetAsync(out.device_token_counts, 0, sizeof(int32_t) * num_devices, stream) !=
        cudaSuccess) {
      return LastLaunchError("dispatch layout: clearing device counts");
    }
    if (num_tokens > 0) {
      CountDeviceTokensKernel<<<GridFor(num_tokens, 128), 128, 0, stream>>>(
          expert_ids, num_tokens, top_k, num_experts, expert_device, out.device_token_counts);
    }
  }
  return LastLaunchError("dispatch layout kernels");
}

Status PermuteRowsBf16(const uint16_t* hidden, const int32_t* row_routes, int64_t rows,
                       int32_t top_k, int64_t hidden_size, uint16_t* out, Stream stream) {
  if (rows < 0 || top_k < 1 || hidden_size < 1) {
    return InvalidArgument("permute rows: rows >= 0, top_k >= 1 and hidden_size >= 1 required");
  }
  if (rows == 0) return Status::Ok();
  constexpr int kWarps = 8;
  const int64_t blocks = (rows + kWarps - 1) / kWarps;
  if (blocks > 0x7fffffffLL) return InvalidArgument("permute rows: too many rows");
  PermuteRowsKernel<<<static_cast<unsigned>(blocks), kWarps * 32, 0, stream>>>(
      hidden, row_routes, rows, top_k, hidden_size, out);
  return LastLaunchError("permute rows kernel");
}

Status CombineRowsBf16(const uint16_t* expert_out, const int32_t* route_rows,
                       const float* weights, int64_t num_tokens, int32_t top_k,
                       int64_t hidden_size, float* out, Stream stream) {
  if (num_tokens < 0 || top_k < 1 || hidden_size < 1) {
    return InvalidArgument("combine rows: num_tokens >= 0, top_k >= 1, hidden_size >= 1 required");
  }
  if (num_tokens == 0) return Status::Ok();
  if (num_tokens > 0x7fffffffLL) return InvalidArgument("combine rows: too many tokens");
  const int64_t columns = hidden_size % 8 == 0 ? hidden_size / 8 : hidden_size;
  const int64_t tiles = (columns + kCombineThreads - 1) / kCombineThreads;
  if (tiles > 65535) return InvalidArgument("combine rows: hidden_size too large");
  const dim3 grid(static_cast<unsigned>(num_tokens), static_cast<unsigned>(tiles));
  CombineRowsKernel<<<grid, kCombineThreads, 0, stream>>>(expert_out, route_rows, weights, top_k,
                                                          hidden_size, out);
  return LastLaunchError("combine rows kernel");
}

}  // namespace kubemoe::cuda
