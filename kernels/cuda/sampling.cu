#include <cuda_runtime.h>

#include <climits>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>
#include <string>

#include "kernels/cuda/sampling.h"
#include "kernels/cuda/small_ops_util.cuh"

namespace kubemoe::cuda {
namespace {

constexpr int kPrepThreads = 256;
constexpr int kRowThreads = 256;
constexpr int kItems = 4;  // consecutive sorted tokens per thread in a scan chunk
constexpr int kChunk = kRowThreads * kItems;
constexpr size_t kAlign = 256;

// Sort key of a logit: its bits mapped so unsigned order is descending float order, -0 made +0
// (so the two tie, as they compare on the CPU), the row index above them.
__device__ __forceinline__ uint64_t SortKey(int64_t row, float logit) {
  uint32_t bits = __float_as_uint(logit);
  if (bits == 0x80000000u) bits = 0;
  const uint32_t ascending = (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
  return (static_cast<uint64_t>(row) << 32) | static_cast<uint32_t>(~ascending);
}

__device__ __forceinline__ float LogitOf(uint64_t key) {
  const uint32_t ascending = ~static_cast<uint32_t>(key);
  const uint32_t bits = (ascending & 0x80000000u) != 0 ? ascending & 0x7FFFFFFFu : ~ascending;
  return __uint_as_float(bits);
}

__global__ void __launch_bounds__(kPrepThreads)
    PrepareKeysKernel(const float* logits, int64_t ld, int64_t rows, int64_t vocab, uint64_t* keys,
                      int32_t* ids) {
  const int64_t n = rows * vocab;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kPrepThreads) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * kPrepThreads) {
    const int64_t row = i / vocab;
    const int64_t col = i - row * vocab;
    keys[i] = SortKey(row, logits[row * ld + col]);
    ids[i] = static_cast<int32_t>(col);
  }
}

// Walks a row's sorted tokens [0, count) a chunk at a time, keeping the running sum of their
// unnormalised probabilities, and finds the first index whose inclusive cumulative sum satisfies
// `hit` (a monotone predicate). Returns whether one was found; *index and *cumulative (the sum
// through it) are then the same in every thread.
struct RowScan {
  using Scan = cub::BlockScan<double, kRowThreads>;
  using Reduce = cub::BlockReduce<double, kRowThreads>;
  // The block's shared memory for one walk.
  struct Shared {
    union {
      typename Scan::TempStorage scan;
      typename Reduce::TempStorage reduce;
    } temp;
    int found;
    double found_cumulative;
    double total;
  };
  Shared* shared;
  const uint64_t* keys;
  double max;
  double temperature;

  __device__ double Prob(int64_t i) const {
    return exp((static_cast<double>(LogitOf(keys[i])) - max) / temperature);
  }

  // Sum of the probabilities of tokens [0, count), in every thread.
  __device__ double Sum(int64_t count) {
    double local = 0.0;
    for (int64_t i = threadIdx.x; i < count; i += kRowThreads) local += Prob(i);
    __syncthreads();  // temp may still be in use by a previous walk
    const double sum = Reduce(shared->temp.reduce).Sum(local);
    if (threadIdx.x == 0) shared->total = sum;
    __syncthreads();
    return shared->total;
  }

  template <typename Hit>
  __device__ bool FindFirst(int64_t count, Hit hit, int64_t* index, double* cumulative) {
    __syncthreads();  // every thread has read the previous walk's result
    if (threadIdx.x == 0) shared->found = INT_MAX;
    __syncthreads();
    double carry = 0.0;  // sum over the previous chunks
    for (int64_t base = 0; base < count; base += kChunk) {
      const int64_t first = base + static_cast<int64_t>(threadIdx.x) * kItems;
      double p[kItems];
      double mine = 0.0;
#pragma unroll
      for (int k = 0; k < kItems; ++k) {
        p[k] = first + k < count ? Prob(first + k) : 0.0;
        mine += p[k];
      }
      double before = 0.0;
      double chunk_total = 0.0;
      Scan(shared->temp.scan).ExclusiveSum(mine, before, chunk_total);
      double cum = carry + before;
      int my_hit = INT_MAX;
      double my_cum = 0.0;
#pragma unroll
      for (int k = 0; k < kItems; ++k) {
        cum += p[k];
        if (my_hit == INT_MAX && first + k < count && hit(cum)) {
          my_hit = static_cast<int>(first + k);
          my_cum = cum;
        }
      }
      if (my_hit != INT_MAX) atomicMin(&shared->found, my_hit);
      carry += chunk_total;
      __syncthreads();  // found is final for this chunk; temp is free for the next one
      const int first_hit = shared->found;
      if (first_hit != INT_MAX) {
        if (my_hit == first_hit) shared->found_cumulative = my_cum;
        __syncthreads();
        *index = first_hit;
        *cumulative = shared->found_cumulative;
        return true;
      }
    }
    return false;
  }
};

// One block per row (grid-stride over rows) over the row's sorted keys and ids.
__global__ void __launch_bounds__(kRowThreads)
    SampleRowsKernel(const uint64_t* keys, const int32_t* ids, int64_t rows, int64_t vocab,
                     const SamplingRow* params, int32_t* out_ids) {
  __shared__ RowScan::Shared shared;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const uint64_t* row_keys = keys + r * vocab;
    const int32_t* row_ids = ids + r * vocab;
    const SamplingRow p = params[r];
    if (p.temperature <= 0.0f) {  // greedy: the largest logit, lowest id first
      if (threadIdx.x == 0) out_ids[r] = row_ids[0];
      continue;
    }
    const auto max = static_cast<double>(LogitOf(row_keys[0]));
    RowScan scan{&shared, row_keys, max, static_cast<double>(p.temperature)};
    const int64_t kept = p.top_k > 0 && p.top_k < vocab ? p.top_k : vocab;
    const double kept_sum = scan.Sum(kept);
    // Nucleus: the shortest prefix whose renormalised mass reaches top_p (all of them when
    // rounding leaves the total short of it).
    int64_t count = kept;
    double count_sum = kept_sum;
    if (p.top_p < 1.0f) {
      const double top_p = p.top_p;
      int64_t last = 0;
      double cum = 0.0;
      const auto reaches_top_p = [&](double c) { return c / kept_sum >= top_p; };
      if (scan.FindFirst(kept, reaches_top_p, &last, &cum)) {
        count = last + 1;
        count_sum = cum;
      }
    }
    // The draw: the first token whose cumulative probability exceeds u, else the last kept.
    const double target = p.u * count_sum;
    int64_t pick = count - 1;
    double cum = 0.0;
    const auto exceeds_u = [&](double c) { return c > target; };
    scan.FindFirst(count, exceeds_u, &pick, &cum);
    if (threadIdx.x == 0) out_ids[r] = row_ids[pick];
  }
}

// The better of two (logit, id) candidates: the larger logit, the lower id on equal logits; an
// id of INT_MAX is no candidate.
__device__ __forceinline__ void KeepBetter(float& v, int& i, float other_v, int other_i) {
  if (other_i == INT_MAX) return;
  if (i == INT_MAX || other_v > v || (other_v == v && other_i < i)) {
    v = other_v;
    i = other_i;
  }
}

// One block per row (grid-stride over rows): each thread scans a strided slice, then warps and
// the block combine their candidates.
__global__ void __launch_bounds__(kRowThreads)
    ArgmaxRowsKernel(const float* logits, int64_t ld, int64_t rows, int64_t vocab,
                     int32_t* out_ids) {
  constexpr int kWarps = kRowThreads / 32;
  __shared__ float warp_v[kWarps];
  __shared__ int warp_i[kWarps];
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* row = logits + r * ld;
    float v = 0.0f;
    int i = INT_MAX;
    for (int64_t j = threadIdx.x; j < vocab; j += kRowThreads) {
      KeepBetter(v, i, row[j], static_cast<int>(j));
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
      const float other_v = __shfl_xor_sync(0xFFFFFFFFu, v, offset);
      const int other_i = __shfl_xor_sync(0xFFFFFFFFu, i, offset);
      KeepBetter(v, i, other_v, other_i);
    }
    __syncthreads();  // the previous row is done with warp_v / warp_i
    if (lane == 0) {
      warp_v[warp] = v;
      warp_i[warp] = i;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < kWarps; ++w) KeepBetter(v, i, warp_v[w], warp_i[w]);
      out_ids[r] = i;
    }
  }
}

int RowBits(int64_t rows) {
  int bits = 0;
  while (bits < 31 && (int64_t{1} << bits) < rows) ++bits;
  return bits;
}

size_t AlignUp(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

Status CheckSizes(const std::string& op, int64_t rows, int64_t vocab) {
  if (rows < 0) return InvalidArgument(op + ": rows (" + std::to_string(rows) + ") must be >= 0");
  if (vocab < 1) {
    return InvalidArgument(op + ": vocab (" + std::to_string(vocab) + ") must be >= 1");
  }
  if (rows * vocab >= (int64_t{1} << 31) || vocab >= (int64_t{1} << 31)) {
    return InvalidArgument(op + ": rows * vocab (" + std::to_string(rows) + " * " +
                           std::to_string(vocab) + ") must be < 2^31");
  }
  return Status::Ok();
}

// The workspace's parts, each 256-byte aligned: keys and ids twice (CUB's double buffers), then
// CUB's scratch.
struct Layout {
  size_t keys_bytes = 0;
  size_t ids_bytes = 0;
  size_t cub_bytes = 0;
  int end_bit = 0;
  size_t Total() const { return 2 * keys_bytes + 2 * ids_bytes + cub_bytes; }
};

StatusOr<Layout> LayoutFor(const std::string& op, int64_t rows, int64_t vocab) {
  KUBEMOE_RETURN_IF_ERROR(CheckSizes(op, rows, vocab));
  Layout layout;
  const auto n = static_cast<size_t>(rows * vocab);
  layout.keys_bytes = AlignUp(n * sizeof(uint64_t));
  layout.ids_bytes = AlignUp(n * sizeof(int32_t));
  layout.end_bit = 32 + RowBits(rows);
  cub::DoubleBuffer<uint64_t> keys(nullptr, nullptr);
  cub::DoubleBuffer<int32_t> ids(nullptr, nullptr);
  size_t cub_bytes = 0;
  const cudaError_t err = cub::DeviceRadixSort::SortPairs(
      nullptr, cub_bytes, keys, ids, static_cast<int64_t>(n), 0, layout.end_bit);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return Internal(op + ": sizing the radix sort: " + cudaGetErrorString(err));
  }
  layout.cub_bytes = AlignUp(cub_bytes);
  return layout;
}

}  // namespace

StatusOr<size_t> SamplingWorkspaceBytes(int64_t rows, int64_t vocab) {
  StatusOr<Layout> layout = LayoutFor("cuda::SamplingWorkspaceBytes", rows, vocab);
  if (!layout.ok()) return layout.status();
  return layout->Total();
}

Status SampleTokens(const float* logits, int64_t ld, int64_t rows, int64_t vocab,
                    const SamplingRow* params, int32_t* out_ids, void* workspace,
                    size_t workspace_bytes, Stream stream) {
  const std::string op = "cuda::SampleTokens";
  KUBEMOE_RETURN_IF_ERROR(CheckSizes(op, rows, vocab));
  if (ld < vocab) {
    return InvalidArgument(op + ": ld (" + std::to_string(ld) + ") must be >= vocab (" +
                           std::to_string(vocab) + ")");
  }
  if (rows == 0) return Status::Ok();
  if (logits == nullptr) return InvalidArgument(op + ": logits is null");
  if (params == nullptr) return InvalidArgument(op + ": params is null");
  if (out_ids == nullptr) return InvalidArgument(op + ": out_ids is null");
  if (workspace == nullptr) return InvalidArgument(op + ": workspace is null");
  StatusOr<Layout> layout = LayoutFor(op, rows, vocab);
  if (!layout.ok()) return layout.status();
  if (workspace_bytes < layout->Total()) {
    return InvalidArgument(op + ": workspace_bytes (" + std::to_string(workspace_bytes) +
                           ") must be >= " + std::to_string(layout->Total()) +
                           " (SamplingWorkspaceBytes)");
  }
  const auto w = static_cast<int64_t>(workspace_bytes);
  if (Overlaps(workspace, w, logits, SpanElements(rows, ld, vocab) * 4) ||
      Overlaps(workspace, w, params, rows * static_cast<int64_t>(sizeof(SamplingRow))) ||
      Overlaps(workspace, w, out_ids, rows * 4)) {
    return InvalidArgument(op + ": workspace overlaps logits, params or out_ids");
  }
  auto* base = static_cast<char*>(workspace);
  auto* keys_a = reinterpret_cast<uint64_t*>(base);
  auto* keys_b = reinterpret_cast<uint64_t*>(base + layout->keys_bytes);
  auto* ids_a = reinterpret_cast<int32_t*>(base + 2 * layout->keys_bytes);
  auto* ids_b = reinterpret_cast<int32_t*>(base + 2 * layout->keys_bytes + layout->ids_bytes);
  void* cub_temp = base + 2 * layout->keys_bytes + 2 * layout->ids_bytes;

  const int64_t n = rows * vocab;
  PrepareKeysKernel<<<GridFor((n + kPrepThreads - 1) / kPrepThreads), kPrepThreads, 0, stream>>>(
      logits, ld, rows, vocab, keys_a, ids_a);
  KUBEMOE_RETURN_IF_ERROR(LastLaunchError("cuda::SampleTokens (preparing keys)"));
  cub::DoubleBuffer<uint64_t> keys(keys_a, keys_b);
  cub::DoubleBuffer<int32_t> ids(ids_a, ids_b);
  size_t cub_bytes = layout->cub_bytes;
  const cudaError_t err = cub::DeviceRadixSort::SortPairs(cub_temp, cub_bytes, keys, ids, n, 0,
                                                          layout->end_bit, stream);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return Internal(op + ": radix sort: " + cudaGetErrorString(err));
  }
  SampleRowsKernel<<<GridFor(rows), kRowThreads, 0, stream>>>(keys.Current(), ids.Current(), rows,
                                                              vocab, params, out_ids);
  return LastLaunchError("cuda::SampleTokens (sampling rows)");
}

Status ArgmaxRows(const float* logits, int64_t ld, int64_t rows, int64_t vocab, int32_t* out_ids,
                  Stream stream) {
  const std::string op = "cuda::ArgmaxRows";
  if (rows < 0) return InvalidArgument(op + ": rows (" + std::to_string(rows) + ") must be >= 0");
  if (vocab < 1 || vocab >= (int64_t{1} << 31)) {
    return InvalidArgument(op + ": vocab (" + std::to_string(vocab) + ") must be in [1, 2^31)");
  }
  if (ld < vocab) {
    return InvalidArgument(op + ": ld (" + std::to_string(ld) + ") must be >= vocab (" +
                           std::to_string(vocab) + ")");
  }
  if (rows == 0) return Status::Ok();
  if (logits == nullptr) return InvalidArgument(op + ": logits is null");
  if (out_ids == nullptr) return InvalidArgument(op + ": out_ids is null");
  ArgmaxRowsKernel<<<GridFor(rows), kRowThreads, 0, stream>>>(logits, ld, rows, vocab, out_ids);
  return LastLaunchError(op.c_str());
}

}  // namespace kubemoe::cuda
