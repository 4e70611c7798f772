// MLA absorbed decode attention: a split kernel on the tensor cores (flash-decoding) plus a
// combine kernel, and an f32 CUDA-core version that cross-checks them. See mla_decode.h.
//
// Split kernel: one block per (position chunk, 64 heads, sequence). With 128 heads every cache
// row serves every head, so the block stages 32 rows at a time in shared memory (cp.async, two
// stages) and multiplies them against the 64 heads' queries with mma.sync m16n8k16 (bf16 in, f32
// accumulate):
//   scores S[64 x 32] = Q[64 x row] K^T    warp (w % 4, w / 4) computes heads 16(w % 4).., rows
//                                           16(w / 4).. of the tile
//   online softmax per head (f32, base 2)  4 threads per head
//   O[64 x rank] += P[64 x 32] V[32 x rank] warp w owns output columns 16(w + 8i).., all 64 heads
// and leaves O unnormalized with its running max and sum in the workspace for the combine kernel.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "kernels/cuda/mla_decode.h"

namespace kubemoe::cuda {
namespace {

constexpr int kHeadTile = 64;  // heads per block: each staged row serves this many
constexpr int kPosTile = 32;   // cache rows per pipeline stage
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kMaxRank = 512;                           // output columns per block
constexpr int kMaxRow = 576;                            // shared memory is sized for it
constexpr int kGroupsPerWarp = kMaxRank / 16 / kWarps;  // 16-column groups per warp
constexpr int kScoreStride = kPosTile + 4;              // f32; breaks bank alignment
constexpr int kProbStride = kPosTile + 8;               // bf16; 80 B rows: ldmatrix-safe
constexpr int kMinChunkTiles = 16;  // >= 512 positions per split: partial O stays small next to
                                    // the rows it summarizes
constexpr int kTargetBlocks = 264;  // two waves of H200's 132 SMs at one block per SM
constexpr float kLog2e = 1.4426950408889634f;

constexpr int kF32Warps = 8;
constexpr int kF32Threads = kF32Warps * 32;
constexpr int kF32MaxDim = 1024;

static_assert(kHeadTile == 16 * 4 && kPosTile == 16 * 2 && kWarps == 8,
              "the score phase maps 8 warps onto 4 x 2 tiles of 16 x 16");
static_assert(kHeadTile * 4 == kThreads, "the softmax phase gives each head 4 threads");

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// How MlaDecode divides the work; the workspace size depends only on it.
struct Plan {
  int32_t head_tiles = 0;
  int32_t splits = 0;  // position chunks per sequence (the grid's x)
  int64_t chunk = 0;   // positions per chunk, a multiple of kPosTile
  int32_t padded_row = 0;
  size_t partial_o_floats = 0;
  size_t partial_ml_floats = 0;
  size_t smem_bytes = 0;
};

Plan MakePlan(const MlaDecodeShape& s, int32_t batch, int32_t max_length,
              MlaDecodeVariant variant) {
  const bool v2 = variant == MlaDecodeVariant::kTensorCoreV2;
  Plan p;
  p.head_tiles = static_cast<int32_t>(CeilDiv(s.num_heads, kHeadTile));
  const int64_t tiles_max = CeilDiv(max_length, kPosTile);
  const int64_t units = static_cast<int64_t>(batch) * p.head_tiles;
  // v2: ~4 blocks per SM (132 SMs) so the last wave's tail, at most one chunk, is shorter.
  const int64_t target = v2 ? 4 * 132 : kTargetBlocks;
  const int64_t want = std::clamp<int64_t>(CeilDiv(target, units), 1, tiles_max);
  const int64_t chunk_tiles = std::max<int64_t>(kMinChunkTiles, CeilDiv(tiles_max, want));
  p.splits = static_cast<int32_t>(CeilDiv(tiles_max, chunk_tiles));  // <= want <= kTargetBlocks
  p.chunk = chunk_tiles * kPosTile;
  p.padded_row = static_cast<int32_t>(CeilDiv(s.kv_lora_rank + s.rope_dim, 16) * 16);
  const size_t rows = static_cast<size_t>(batch) * p.splits * s.num_heads;
  p.partial_o_floats = rows * s.kv_lora_rank;
  p.partial_ml_floats = rows * 2;
  const size_t stride = p.padded_row + 8;  // bf16; an odd multiple of 16 B: ldmatrix-safe
  p.smem_bytes = v2 ? (kHeadTile + 2 * kPosTile) * stride * 2 + kWarps * 16 * kPosTile * 4
                    : (kHeadTile + 2 * kPosTile) * stride * 2 + kHeadTile * kScoreStride * 4 +
                          kHeadTile * kProbStride * 2 + 3 * kHeadTile * 4;
  return p;
}

size_t AlignUp(size_t n) { return (n + 255) / 256 * 256; }

Status CheckShape(const char* op, const MlaDecodeShape& s, int32_t batch, bool tensor_cores) {
  const std::string where = std::string(op) + ": ";
  if (s.num_heads < 1) {
    return InvalidArgument(where + "num_heads must be >= 1, got " + std::to_string(s.num_heads));
  }
  if (batch < 1 || batch > 65535) {
    return InvalidArgument(where + "batch must be in [1, 65535], got " + std::to_string(batch));
  }
  if (!std::isfinite(s.softmax_scale)) {
    return InvalidArgument(where + "softmax_scale must be finite");
  }
  if (tensor_cores) {
    if (s.kv_lora_rank < 8 || s.kv_lora_rank > kMaxRank || s.kv_lora_rank % 8 != 0) {
      return InvalidArgument(where + "kv_lora_rank must be a multiple of 8 in [8, 512], got " +
                             std::to_string(s.kv_lora_rank));
    }
    if (s.rope_dim < 0 || s.rope_dim % 8 != 0 || s.kv_lora_rank + s.rope_dim > kMaxRow) {
      return InvalidArgument(where +
                             "rope_dim must be a multiple of 8 >= 0 with kv_lora_rank + "
                             "rope_dim <= 576, got " +
                             std::to_string(s.rope_dim));
    }
    if (CeilDiv(s.num_heads, kHeadTile) > 65535) {
      return InvalidArgument(where + "num_heads must be <= " + std::to_string(65535 * kHeadTile));
    }
  } else {
    if (s.kv_lora_rank < 1 || s.kv_lora_rank > kF32MaxDim) {
      return InvalidArgument(where + "kv_lora_rank must be in [1, 1024], got " +
                             std::to_string(s.kv_lora_rank));
    }
    if (s.rope_dim < 0 || s.rope_dim > kF32MaxDim) {
      return InvalidArgument(where + "rope_dim must be in [0, 1024], got " +
                             std::to_string(s.rope_dim));
    }
  }
  return Status::Ok();
}

Status CheckPointer(const char* op, const char* field, const void* p, size_t alignment) {
  if (p == nullptr) return InvalidArgument(std::string(op) + ": " + field + " is null");
  if (reinterpret_cast<uintptr_t>(p) % alignment != 0) {
    return InvalidArgument(std::string(op) + ": " + field + " must be " +
                           std::to_string(alignment) + "-byte aligned");
  }
  return Status::Ok();
}

__device__ __forceinline__ uint32_t SmemAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared; when !valid, writes zeros and reads nothing (src-size 0).
__device__ __forceinline__ void CopyAsync16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void CopyAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int kPending>
__device__ __forceinline__ void CopyAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

__device__ __forceinline__ void LoadMatrixX4(uint32_t address, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address)
               : "memory");
}
__device__ __forceinline__ void LoadMatrixX4Trans(uint32_t address, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address)
               : "memory");
}

// c += a b for one m16n8k16 tile; a in the row-major fragment, b in the column-major one.
__device__ __forceinline__ void Mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ float Bf16Bits(uint16_t bits) {
  return __uint_as_float(static_cast<uint32_t>(bits) << 16);
}

struct SplitParams {
  const uint16_t* q;
  const uint16_t* cache;
  const int64_t* row_start;
  const int32_t* length;
  float* partial_o;   // [batch][splits][heads][rank], unnormalized
  float* partial_ml;  // [batch][splits][heads][2]: running max (base 2) and sum
  int32_t heads;
  int32_t rank;
  int32_t row;
  int32_t padded_row;
  int32_t splits;
  int64_t chunk;
  float scale_log2;  // softmax_scale * log2(e): the softmax runs on exp2
};

// Both split kernels stage their inputs the same way, by cp.async into shared memory rows of
// stride ls (bf16), 16 bytes at a time; the row padding past the real row is zeros.
// The block's query rows; heads past num_heads get zero queries: finite scores, never stored.
__device__ __forceinline__ void StageQueries(const SplitParams& p, uint16_t* s_q, int ls,
                                             int chunks, int real_chunks, int b, int head0,
                                             int tid) {
  for (int i = tid; i < kHeadTile * chunks; i += kThreads) {
    const int r = i / chunks;
    const int c = i % chunks;
    const int h = head0 + r;
    const bool valid = h < p.heads && c < real_chunks;
    const uint16_t* src =
        valid ? p.q + (static_cast<int64_t>(b) * p.heads + h) * p.row + c * 8 : p.q;
    CopyAsync16(SmemAddress(s_q + r * ls + c * 8), src, valid);
  }
}

// Cache rows [first, first + kPosTile) of the block's chunk (which holds `count` rows starting
// at `rows`) into dst. Rows past the chunk's end are zeros, so masked probabilities multiply
// zeros, never garbage.
__device__ __forceinline__ void StageCacheTile(const SplitParams& p, const uint16_t* rows,
                                               uint16_t* dst, int ls, int chunks, int real_chunks,
                                               int64_t count, int64_t first, int tid) {
  for (int i = tid; i < kPosTile * chunks; i += kThreads) {
    const int r = i / chunks;
    const int c = i % chunks;
    const bool valid = first + r < count && c < real_chunks;
    const uint16_t* src = valid ? rows + (first + r) * p.row + c * 8 : p.cache;
    CopyAsync16(SmemAddress(dst + r * ls + c * 8), src, valid);
  }
}

__global__ void __launch_bounds__(kThreads, 1) MlaSplitKernel(const SplitParams p) {
  const int split = blockIdx.x;
  const int head0 = blockIdx.y * kHeadTile;
  const int b = blockIdx.z;
  const int64_t length = p.length[b];
  const int64_t begin = split * p.chunk;
  if (begin >= length) return;  // an empty chunk: the combine kernel never reads it
  const int64_t end = min(length, begin + p.chunk);
  const int tiles = static_cast<int>((end - begin + kPosTile - 1) / kPosTile);

  extern __shared__ __align__(16) unsigned char smem[];
  const int ls = p.padded_row + 8;  // row stride in bf16
  uint16_t* s_q = reinterpret_cast<uint16_t*>(smem);
  uint16_t* s_k = s_q + kHeadTile * ls;  // two stages of kPosTile rows
  float* s_score = reinterpret_cast<float*>(s_k + 2 * kPosTile * ls);
  uint16_t* s_prob = reinterpret_cast<uint16_t*>(s_score + kHeadTile * kScoreStride);
  float* s_max = reinterpret_cast<float*>(s_prob + kHeadTile * kProbStride);
  float* s_sum = s_max + kHeadTile;
  float* s_alpha = s_sum + kHeadTile;

  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int chunks = p.padded_row / 8;  // 16-byte pieces per staged row
  const int real_chunks = p.row / 8;    // the rest is zero padding up to a multiple of 16
  const uint16_t* rows = p.cache + (p.row_start[b] + begin) * p.row;

  StageQueries(p, s_q, ls, chunks, real_chunks, b, head0, tid);
  auto load_tile = [&](int t, int stage) {
    StageCacheTile(p, rows, s_k + stage * kPosTile * ls, ls, chunks, real_chunks, end - begin,
                   static_cast<int64_t>(t) * kPosTile, tid);
  };
  load_tile(0, 0);
  CopyAsyncCommit();
  if (tid < kHeadTile) {
    s_max[tid] = -INFINITY;
    s_sum[tid] = 0.0f;
  }

  const int groups = (p.rank + 15) / 16;  // 16-column groups of the output
  const int g = lane / 4;                 // fragment row
  const int tq = lane % 4;                // fragment column pair
  float o[4][kGroupsPerWarp][2][4] = {};  // [head m-tile][group slot][n8 half][fragment]

  for (int t = 0; t < tiles; ++t) {
    const int stage = t & 1;
    if (t + 1 < tiles) {
      load_tile(t + 1, stage ^ 1);  // its stage was last read before the previous barrier
      CopyAsyncCommit();
      CopyAsyncWait<1>();
    } else {
      CopyAsyncWait<0>();
    }
    __syncthreads();
    const uint16_t* k = s_k + stage * kPosTile * ls;

    {  // Scores of heads 16 mw.. against rows 16 nw.. of this tile.
      const int mw = warp % 4;
      const int nw = warp / 4;
      const uint32_t a_address = SmemAddress(s_q + (16 * mw + lane % 16) * ls + (lane / 16) * 8);
      const uint32_t b_address =
          SmemAddress(k + (16 * nw + (lane / 16) * 8 + lane % 8) * ls + ((lane / 8) % 2) * 8);
      float acc[2][2][4] = {};  // two chains per n8 tile (even, odd k-steps) for latency
      const int k_steps = p.padded_row / 16;
      int ks = 0;
#pragma unroll 3  // lets the next steps' ldmatrix issue under this step's mma (36 steps: 6 x 3)
      for (; ks + 1 < k_steps; ks += 2) {
#pragma unroll
        for (int parity = 0; parity < 2; ++parity) {
          uint32_t a[4];
          uint32_t bk[4];
          LoadMatrixX4(a_address + (ks + parity) * 32, a);
          LoadMatrixX4(b_address + (ks + parity) * 32, bk);
          Mma(acc[parity][0], a, bk[0], bk[1]);
          Mma(acc[parity][1], a, bk[2], bk[3]);
        }
      }
      if (ks < k_steps) {
        uint32_t a[4];
        uint32_t bk[4];
        LoadMatrixX4(a_address + ks * 32, a);
        LoadMatrixX4(b_address + ks * 32, bk);
        Mma(acc[0][0], a, bk[0], bk[1]);
        Mma(acc[0][1], a, bk[2], bk[3]);
      }
      const int64_t tile_first = begin + static_cast<int64_t>(t) * kPosTile;
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int row = 16 * mw + g + 8 * half;
            const int col = 16 * nw + 8 * nt + 2 * tq + e;
            const float v = acc[0][nt][2 * half + e] + acc[1][nt][2 * half + e];
            s_score[row * kScoreStride + col] =
                tile_first + col < end ? v * p.scale_log2 : -INFINITY;
          }
        }
      }
    }
    __syncthreads();

    {  // Online softmax: 4 consecutive threads per head, each every 4th score (conflict-free).
      const int row = tid / 4;
      const int quarter = tid % 4;
      const float* s = s_score + row * kScoreStride + quarter;
      float v[8];
      float tile_max = -INFINITY;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        v[i] = s[4 * i];
        tile_max = fmaxf(tile_max, v[i]);
      }
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
      const float old_max = s_max[row];
      const float new_max = fmaxf(old_max, tile_max);  // finite: each tile has a valid row
      uint16_t* prob = s_prob + row * kProbStride + quarter;
      float sum = 0.0f;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        // The sum adds the rounded probabilities the tensor cores multiply, so the weights
        // still sum to one.
        const __nv_bfloat16 pb = __float2bfloat16(exp2f(v[i] - new_max));
        prob[4 * i] = __bfloat16_as_ushort(pb);
        sum += __bfloat162float(pb);
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      __syncwarp();  // every thread of the head has read s_max[row] before it changes
      if (quarter == 0) {
        const float alpha = exp2f(old_max - new_max);  // 0 on the first tile (old_max = -inf)
        s_alpha[row] = alpha;
        s_sum[row] = s_sum[row] * alpha + sum;
        s_max[row] = new_max;
      }
    }
    __syncthreads();

    {  // O = alpha O + P V over this warp's column groups, all 64 heads.
#pragma unroll
      for (int mt = 0; mt < 4; ++mt) {
        const float alpha_lo = s_alpha[16 * mt + g];
        const float alpha_hi = s_alpha[16 * mt + g + 8];
#pragma unroll
        for (int slot = 0; slot < kGroupsPerWarp; ++slot) {
#pragma unroll
          for (int nt = 0; nt < 2; ++nt) {
            o[mt][slot][nt][0] *= alpha_lo;
            o[mt][slot][nt][1] *= alpha_lo;
            o[mt][slot][nt][2] *= alpha_hi;
            o[mt][slot][nt][3] *= alpha_hi;
          }
        }
      }
#pragma unroll
      for (int ks = 0; ks < kPosTile / 16; ++ks) {
        uint32_t a[4][4];
#pragma unroll
        for (int mt = 0; mt < 4; ++mt) {
          LoadMatrixX4(
              SmemAddress(s_prob + (16 * mt + lane % 16) * kProbStride + 16 * ks + (lane / 16) * 8),
              a[mt]);
        }
#pragma unroll
        for (int slot = 0; slot < kGroupsPerWarp; ++slot) {
          const int group = warp + kWarps * slot;
          if (group < groups) {
            uint32_t bv[4];
            LoadMatrixX4Trans(
                SmemAddress(k + (16 * ks + lane % 16) * ls + 16 * group + (lane / 16) * 8), bv);
#pragma unroll
            for (int mt = 0; mt < 4; ++mt) {
              Mma(o[mt][slot][0], a[mt], bv[0], bv[1]);
              Mma(o[mt][slot][1], a[mt], bv[2], bv[3]);
            }
          }
        }
      }
    }
    __syncthreads();  // the stage and the score/probability tiles are free again
  }

  const int64_t out_row0 = (static_cast<int64_t>(b) * p.splits + split) * p.heads;
  float* partial_o = p.partial_o + out_row0 * p.rank;
#pragma unroll
  for (int mt = 0; mt < 4; ++mt) {
#pragma unroll
    for (int slot = 0; slot < kGroupsPerWarp; ++slot) {
      const int group = warp + kWarps * slot;
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int h = head0 + 16 * mt + g + 8 * half;
          const int col = 16 * group + 8 * nt + 2 * tq;  // even, and rank is: col + 1 < rank
          if (group < groups && h < p.heads && col < p.rank) {
            *reinterpret_cast<float2*>(partial_o + static_cast<int64_t>(h) * p.rank + col) =
                make_float2(o[mt][slot][nt][2 * half], o[mt][slot][nt][2 * half + 1]);
          }
        }
      }
    }
  }
  if (tid < kHeadTile && head0 + tid < p.heads) {
    float* ml = p.partial_ml + (out_row0 + head0 + tid) * 2;
    ml[0] = s_max[tid];
    ml[1] = s_sum[tid];
  }
}

// Version 2 of the split kernel (MlaDecodeVariant::kTensorCoreV2), FlashAttention-2 style: warp w
// owns heads 16(w / 2).. of the block's 64 and the output columns of every other 16-column group
// (group = w % 2 + 2j), so the two warps of a head group ("partners") share one softmax:
//   S partial[16 x 32] = Q[16 x k-half] K^T    warp half w % 2 takes k-steps [0, mid) or [mid, end)
//   partners swap partials through shared memory (a 64-thread named barrier), each adds both in
//   the same order-independent way (a + b == b + a), so both hold bit-identical S, max and sum
//   online softmax in registers (4 lanes per head row, quad shuffles)
//   P stays in registers: the S accumulator fragment of m16n8k16 is the A fragment of the next
//   O[16 x 256] += P[16 x 32] V[32 x 256]   (V straight from the staged rows, ldmatrix.trans)
// One __syncthreads per 32-row step (the stage barrier) instead of three; score and probability
// tiles never go through shared memory. Partners sit on different SM sub-partitions (warp % 4), so
// the two warps sharing a sub-partition belong to different pairs: they drift apart within a step
// and one's softmax overlaps the other's mma.
constexpr int kV2PartFloats = 16 * kPosTile;  // one warp's partial S, in fragment order

__device__ __forceinline__ void NamedBarrier(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

__global__ void __launch_bounds__(kThreads, 1) MlaSplitKernelV2(const SplitParams p) {
  const int split = blockIdx.x;
  const int head0 = blockIdx.y * kHeadTile;
  const int b = blockIdx.z;
  const int64_t length = p.length[b];
  const int64_t begin = split * p.chunk;
  if (begin >= length) return;  // an empty chunk: the combine kernel never reads it
  const int64_t end = min(length, begin + p.chunk);
  const int tiles = static_cast<int>((end - begin + kPosTile - 1) / kPosTile);

  extern __shared__ __align__(16) unsigned char smem[];
  const int ls = p.padded_row + 8;  // row stride in bf16
  uint16_t* s_q = reinterpret_cast<uint16_t*>(smem);
  uint16_t* s_k = s_q + kHeadTile * ls;                               // two stages of kPosTile rows
  float* s_part = reinterpret_cast<float*>(s_k + 2 * kPosTile * ls);  // [warp][16][32 lanes]

  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int hg = warp / 2;    // head group: heads 16 hg.. of the tile
  const int half = warp % 2;  // k-half of the scores; output groups half, half + 2, ...
  const int partner = warp ^ 1;
  const int chunks = p.padded_row / 8;
  const int real_chunks = p.row / 8;
  const uint16_t* rows = p.cache + (p.row_start[b] + begin) * p.row;

  StageQueries(p, s_q, ls, chunks, real_chunks, b, head0, tid);
  auto load_tile = [&](int t, int stage) {
    StageCacheTile(p, rows, s_k + stage * kPosTile * ls, ls, chunks, real_chunks, end - begin,
                   static_cast<int64_t>(t) * kPosTile, tid);
  };
  load_tile(0, 0);
  CopyAsyncCommit();

  const int groups = (p.rank + 15) / 16;
  const int g = lane / 4;
  const int tq = lane % 4;
  const int k_steps = p.padded_row / 16;
  const int k_mid = k_steps / 2;
  const int ks_begin = half == 0 ? 0 : k_mid;
  const int ks_end = half == 0 ? k_mid : k_steps;
  // A (queries): rows 16 hg + lane % 16, k offset (lane / 16) * 8. B (rows): x4 covers 16 rows
  // x 16 k as [rows 0-7 k 0-7 | rows 0-7 k 8-15 | rows 8-15 k 0-7 | rows 8-15 k 8-15].
  const uint32_t a_address =
      SmemAddress(s_q + (16 * hg + lane % 16) * ls + (lane / 16) * 8) + ks_begin * 32;
  const int b_row = (lane / 16) * 8 + lane % 8;
  const int b_col = ((lane / 8) % 2) * 8;
  float* my_part = s_part + warp * kV2PartFloats + lane;
  const float* partner_part = s_part + partner * kV2PartFloats + lane;

  float o[16][2][4] = {};                     // [group slot j: group half + 2j][n8 half][fragment]
  float row_max[2] = {-INFINITY, -INFINITY};  // heads g, g + 8 (base 2, scaled)
  float row_sum[2] = {0.0f, 0.0f};            // this lane's share; quad-summed at the end

  for (int t = 0; t < tiles; ++t) {
    const int stage = t & 1;
    CopyAsyncWait<0>();
    __syncthreads();  // tile t is in; every warp is done with step t - 1 (stage ^ 1, s_part)
    if (t + 1 < tiles) {
      load_tile(t + 1, stage ^ 1);
      CopyAsyncCommit();
    }
    const uint16_t* k = s_k + stage * kPosTile * ls;
    const uint32_t b_address = SmemAddress(k + b_row * ls + b_col) + ks_begin * 32;

    float acc[4][4] = {};  // [n8 tile: rows 8 nt..][fragment]
    // Fragments of k-step ks + 1 load while ks's four mma run (the last step reloads itself).
    const int my_steps = ks_end - ks_begin;
    uint32_t a[4];
    uint32_t b0[4];
    uint32_t b1[4];
    if (my_steps > 0) {
      LoadMatrixX4(a_address, a);
      LoadMatrixX4(b_address, b0);
      LoadMatrixX4(b_address + 16 * ls * 2, b1);
    }
#pragma unroll 2
    for (int ks = 0; ks < my_steps; ++ks) {
      const int next = min(ks + 1, my_steps - 1);
      uint32_t na[4];
      uint32_t nb0[4];
      uint32_t nb1[4];
      LoadMatrixX4(a_address + next * 32, na);
      LoadMatrixX4(b_address + next * 32, nb0);
      LoadMatrixX4(b_address + 16 * ls * 2 + next * 32, nb1);
      Mma(acc[0], a, b0[0], b0[1]);
      Mma(acc[1], a, b0[2], b0[3]);
      Mma(acc[2], a, b1[0], b1[1]);
      Mma(acc[3], a, b1[2], b1[3]);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        a[i] = na[i];
        b0[i] = nb0[i];
        b1[i] = nb1[i];
      }
    }
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) my_part[(4 * nt + e) * 32] = acc[nt][e];
    }
    NamedBarrier(1 + hg, 64);
    const int64_t tile_first = begin + static_cast<int64_t>(t) * kPosTile;
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = 8 * nt + 2 * tq + (e % 2);
        const float v = (acc[nt][e] + partner_part[(4 * nt + e) * 32]) * p.scale_log2;
        acc[nt][e] = tile_first + col < end ? v : -INFINITY;
        tile_max[e / 2] = fmaxf(tile_max[e / 2], acc[nt][e]);
      }
    }
    float alpha[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
      const float new_max = fmaxf(row_max[r], tile_max[r]);  // finite: a tile has a valid row
      alpha[r] = exp2f(row_max[r] - new_max);                // 0 on the first tile
      row_max[r] = new_max;
      row_sum[r] *= alpha[r];
    }
    // Probabilities rounded to bf16 once; the sum adds the rounded values the mma multiplies.
    uint32_t pa[2][4];  // A fragments for k-steps of 16 rows
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
      const __nv_bfloat162 lo =
          __floats2bfloat162_rn(exp2f(acc[nt][0] - row_max[0]), exp2f(acc[nt][1] - row_max[0]));
      const __nv_bfloat162 hi =
          __floats2bfloat162_rn(exp2f(acc[nt][2] - row_max[1]), exp2f(acc[nt][3] - row_max[1]));
      row_sum[0] += __low2float(lo) + __high2float(lo);
      row_sum[1] += __low2float(hi) + __high2float(hi);
      // a0: (g, k 0-7), a1: (g + 8, k 0-7), a2: (g, k 8-15), a3: (g + 8, k 8-15)
      pa[nt / 2][(nt % 2) * 2 + 0] = *reinterpret_cast<const uint32_t*>(&lo);
      pa[nt / 2][(nt % 2) * 2 + 1] = *reinterpret_cast<const uint32_t*>(&hi);
    }
#pragma unroll
    for (int j = 0; j < 16; ++j) {
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        o[j][nt][0] *= alpha[0];
        o[j][nt][1] *= alpha[0];
        o[j][nt][2] *= alpha[1];
        o[j][nt][3] *= alpha[1];
      }
    }
    const uint32_t v_address = SmemAddress(k + (lane % 16) * ls + (lane / 16) * 8);
    // No branch per group, so the compiler can issue later groups' ldmatrix under earlier mma: a
    // slot past the last group (rank < 512) recomputes the last group into an accumulator that is
    // never stored.
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int group = min(half + 2 * j, groups - 1);
#pragma unroll
      for (int ks = 0; ks < kPosTile / 16; ++ks) {
        uint32_t bv[4];
        LoadMatrixX4Trans(v_address + (16 * ks * ls + 16 * group) * 2, bv);
        Mma(o[j][0], pa[ks], bv[0], bv[1]);
        Mma(o[j][1], pa[ks], bv[2], bv[3]);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 1);
    row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 2);
  }
  const int64_t out_row0 = (static_cast<int64_t>(b) * p.splits + split) * p.heads;
  float* partial_o = p.partial_o + out_row0 * p.rank;
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    const int group = half + 2 * j;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int h = head0 + 16 * hg + g + 8 * r;
        const int col = 16 * group + 8 * nt + 2 * tq;  // even, and rank is: col + 1 < rank
        if (group < groups && h < p.heads && col < p.rank) {
          *reinterpret_cast<float2*>(partial_o + static_cast<int64_t>(h) * p.rank + col) =
              make_float2(o[j][nt][2 * r], o[j][nt][2 * r + 1]);
        }
      }
    }
  }
  if (half == 0 && tq == 0) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int h = head0 + 16 * hg + g + 8 * r;
      if (h < p.heads) {
        float* ml = p.partial_ml + (out_row0 + h) * 2;
        ml[0] = row_max[r];
        ml[1] = row_sum[r];
      }
    }
  }
}

// out[b, h] = sum_s 2^(m_s - M) O_s / sum_s 2^(m_s - M) l_s over the chunks sequence b filled.
__global__ void MlaCombineKernel(const float* partial_o, const float* partial_ml,
                                 const int32_t* length, float* out, int32_t heads, int32_t rank,
                                 int32_t splits, int64_t chunk) {
  const int h = blockIdx.x;
  const int b = blockIdx.y;
  const int64_t filled = (length[b] + chunk - 1) / chunk;
  const int used = static_cast<int>(filled < splits ? filled : splits);
  const int64_t row0 = static_cast<int64_t>(b) * splits * heads + h;  // split s: + s * heads
  float top = -INFINITY;
  for (int s = 0; s < used; ++s) {
    top = fmaxf(top, partial_ml[(row0 + static_cast<int64_t>(s) * heads) * 2]);
  }
  float denominator = 0.0f;
  for (int s = 0; s < used; ++s) {
    const float* ml = partial_ml + (row0 + static_cast<int64_t>(s) * heads) * 2;
    denominator += exp2f(ml[0] - top) * ml[1];
  }
  const float inverse = 1.0f / denominator;
  for (int d = threadIdx.x; d < rank; d += blockDim.x) {
    float acc = 0.0f;
    for (int s = 0; s < used; ++s) {
      const int64_t r = row0 + static_cast<int64_t>(s) * heads;
      acc += exp2f(partial_ml[r * 2] - top) * partial_o[r * rank + d];
    }
    out[(static_cast<int64_t>(b) * heads + h) * rank + d] = acc * inverse;
  }
}

// One block per (head, sequence); each warp runs an online softmax over every 8th row, then the
// warps' states merge. Shared: the query (row floats), each warp's O (rank floats).
__global__ void __launch_bounds__(kF32Threads)
    MlaF32Kernel(const uint16_t* q, const uint16_t* cache, const int64_t* row_start,
                 const int32_t* length, float* out, int32_t heads, int32_t rank, int32_t row,
                 float scale_log2) {
  extern __shared__ float f32_smem[];
  float* s_q = f32_smem;
  float* s_o = s_q + row;  // [warp][rank]
  __shared__ float s_max[kF32Warps];
  __shared__ float s_sum[kF32Warps];
  const int h = blockIdx.x;
  const int b = blockIdx.y;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const uint16_t* q_row = q + (static_cast<int64_t>(b) * heads + h) * row;
  for (int d = threadIdx.x; d < row; d += kF32Threads) s_q[d] = Bf16Bits(q_row[d]);
  for (int d = threadIdx.x; d < kF32Warps * rank; d += kF32Threads) s_o[d] = 0.0f;
  __syncthreads();

  float* o = s_o + warp * rank;  // only this warp's lanes touch it until the barrier
  float run_max = -INFINITY;
  float sum = 0.0f;
  const int64_t n = length[b];
  for (int64_t j = warp; j < n; j += kF32Warps) {
    const uint16_t* k = cache + (row_start[b] + j) * row;
    float dot = 0.0f;
    for (int d = lane; d < row; d += 32) dot += s_q[d] * Bf16Bits(k[d]);
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
      dot += __shfl_xor_sync(0xffffffffu, dot, offset);
    }
    const float s = dot * scale_log2;
    const float new_max = fmaxf(run_max, s);
    const float alpha = exp2f(run_max - new_max);  // 0 on the first row (run_max = -inf)
    const float weight = exp2f(s - new_max);
    sum = sum * alpha + weight;
    for (int d = lane; d < rank; d += 32) o[d] = o[d] * alpha + weight * Bf16Bits(k[d]);
    run_max = new_max;
  }
  if (lane == 0) {
    s_max[warp] = run_max;  // -inf with sum 0 for a warp that saw no row
    s_sum[warp] = sum;
  }
  __syncthreads();
  float total_max = -INFINITY;
  for (int w = 0; w < kF32Warps; ++w) total_max = fmaxf(total_max, s_max[w]);
  float scale[kF32Warps];
  float denominator = 0.0f;
#pragma unroll
  for (int w = 0; w < kF32Warps; ++w) {
    scale[w] = exp2f(s_max[w] - total_max);
    denominator += scale[w] * s_sum[w];
  }
  float* out_row = out + (static_cast<int64_t>(b) * heads + h) * rank;
  for (int d = threadIdx.x; d < rank; d += kF32Threads) {
    float acc = 0.0f;
#pragma unroll
    for (int w = 0; w < kF32Warps; ++w) acc += scale[w] * s_o[w * rank + d];
    out_row[d] = acc / denominator;
  }
}

}  // namespace

size_t MlaDecodeWorkspaceBytes(const MlaDecodeShape& shape, int32_t batch, int32_t max_length,
                               MlaDecodeVariant variant) {
  if (!CheckShape("MlaDecodeWorkspaceBytes", shape, batch, true).ok() || max_length < 1) return 0;
  const Plan plan = MakePlan(shape, batch, max_length, variant);
  return AlignUp(plan.partial_o_floats * sizeof(float)) +
         AlignUp(plan.partial_ml_floats * sizeof(float));
}

Status MlaDecode(const MlaDecodeShape& shape, const uint16_t* q, const uint16_t* cache,
                 const int64_t* row_start, const int32_t* length, int32_t batch, int32_t max_length,
                 void* workspace, float* out, Stream stream, MlaDecodeVariant variant) {
  constexpr const char* kOp = "MlaDecode";
  KUBEMOE_RETURN_IF_ERROR(CheckShape(kOp, shape, batch, true));
  if (max_length < 1) {
    return InvalidArgument(std::string(kOp) + ": max_length must be >= 1, got " +
                           std::to_string(max_length));
  }
  KUBEMOE_RETURN_IF_ERROR(CheckPointer(kOp, "q", q, 16));
  KUBEMOE_RETURN_IF_ERROR(CheckPointer(kOp, "cache", cache, 16));
  KUBEMOE_RETURN_IF_ERROR(CheckPointer(kOp, "row_start", row_start, alignof(int64_t)));
  KUBEMOE_RETURN_IF_ERROR(CheckPointer(kOp, "length", length, alignof(int32_t)));
  KUBEMOE_RETURN_IF_ERROR(CheckPointer(kOp, "workspace", workspace, 16));
  KUBEMOE_RETURN_IF_ERROR(CheckPointer(kOp, "out", out, alignof(float)));

  if (variant != MlaDecodeVariant::kTensorCore && variant != MlaDecodeVariant::kTensorCoreV2) {
    return InvalidArgument(std::string(kOp) + ": unknown variant");
  }
  const Plan plan = MakePlan(shape, batch, max_length, variant);
  SplitParams p;
  p.q = q;
  p.cache = cache;
  p.row_start = row_start;
  p.length = length;
  p.partial_o = static_cast<float*>(workspace);
  p.partial_ml = reinterpret_cast<float*>(static_cast<char*>(workspace) +
                                          AlignUp(plan.partial_o_floats * sizeof(float)));
  p.heads = shape.num_heads;
  p.rank = shape.kv_lora_rank;
  p.row = shape.kv_lora_rank + shape.rope_dim;
  p.padded_row = plan.padded_row;
  p.splits = plan.splits;
  p.chunk = plan.chunk;
  p.scale_log2 = shape.softmax_scale * kLog2e;

  // Over 48 KB of dynamic shared memory needs the opt-in (164,608 B at 512 + 64, v2 165,888:
  // both fit sm_80's 166,912 and sm_90's 232,448).
  const bool v2 = variant == MlaDecodeVariant::kTensorCoreV2;
  const void* kernel = v2 ? reinterpret_cast<const void*>(MlaSplitKernelV2)
                          : reinterpret_cast<const void*>(MlaSplitKernel);
  const cudaError_t attribute = cudaFuncSetAttribute(
      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(plan.smem_bytes));
  if (attribute != cudaSuccess) {
    return Internal(std::string(kOp) + ": cannot give the split kernel " +
                    std::to_string(plan.smem_bytes) +
                    " bytes of shared memory: " + cudaGetErrorString(attribute));
  }
  const dim3 split_grid(plan.splits, plan.head_tiles, batch);
  if (v2) {
    MlaSplitKernelV2<<<split_grid, kThreads, plan.smem_bytes, stream>>>(p);
  } else {
    MlaSplitKernel<<<split_grid, kThreads, plan.smem_bytes, stream>>>(p);
  }
  KUBEMOE_RETURN_IF_ERROR(LastLaunchError("MlaDecode split kernel"));
  const dim3 combine_grid(shape.num_heads, batch);
  MlaCombineKernel<<<combine_grid, 128, 0, stream>>>(p.partial_o, p.partial_ml, length, out,
                                                     p.heads, p.rank, p.splits, p.chunk);
  return LastLaunchError("MlaDecode combine kernel");
}

Status MlaDecodeF32(const MlaDecodeShape& shape, const uint16_t* q, const uint16_t* cache,
                    const int64_t* row_start, const int32_t* length, int32_t batch, float* out,
                    Stream stream) {
  constexpr const char* kOp = "MlaDecodeF32";
  KUBEMOE_RETURN_IF_ERROR(CheckShape(kOp, shape, batch, false));
  KUBEMOE_RETURN_IF_ERROR(CheckPointer(kOp, "q", q, alignof(uint16_t)));
  KUBEMOE_RETURN_IF_ERROR(CheckPointer(kOp, "cache", cache, alignof(uint16_t)));
  KUBEMOE_RETURN_IF_ERROR(CheckPointer(kOp, "row_start", row_start, alignof(int64_t)));
  KUBEMOE_RETURN_IF_ERROR(CheckPointer(kOp, "length", length, alignof(int32_t)));
  KUBEMOE_RETURN_IF_ERROR(CheckPointer(kOp, "out", out, alignof(float)));
  const int32_t row = shape.kv_lora_rank + shape.rope_dim;
  // At most (2048 + 8 * 1024) floats = 40 KB: under the 48 KB that needs no opt-in.
  const size_t smem = (static_cast<size_t>(row) + kF32Warps * shape.kv_lora_rank) * sizeof(float);
  const dim3 grid(shape.num_heads, batch);
  MlaF32Kernel<<<grid, kF32Threads, smem, stream>>>(q, cache, row_start, length, out,
                                                    shape.num_heads, shape.kv_lora_rank, row,
                                                    shape.softmax_scale * kLog2e);
  return LastLaunchError("MlaDecodeF32 kernel");
}

}  // namespace kubemoe::cuda
