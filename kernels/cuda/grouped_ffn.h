// The routed experts' SwiGLU feed-forward on the GPU for a batch of rows already grouped by
// expert (the dispatch layout): gate and up products, SwiGLU, down product for every expert with
// rows, through cuBLAS in bf16 with f32 accumulation. Also the dense bf16 GEMM the grouped FFN is
// measured against. The CPU twin is cpu::SwiGluFfn (kernels/cpu/swiglu.h) applied per expert.
// Plain C++: no CUDA header is included, so the engine and tests compile without the toolkit's
// headers; they link kubemoe_kernels_cuda.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "kernels/cuda/runtime.h"

// cuBLAS's handle type (cublasHandle_t is cublasContext*), declared so this header can hold one.
struct cublasContext;

namespace kubemoe::cuda {

// Routed experts of one layer on the device, bf16, Hugging Face layout, stacked:
// gate, up [E x I x H], down [E x H x I]. REQUIRES: each pointer 16-byte aligned.
struct ExpertWeightsBf16 {
  int32_t num_experts = 0, hidden = 0, intermediate = 0;
  const uint16_t* gate = nullptr;
  const uint16_t* up = nullptr;
  const uint16_t* down = nullptr;
};

// How GroupedExpertFfn issues its matrix products.
enum class ExpertGemmPath {
  // cublasGemmGroupedBatchedEx: one call for the gate and up products of every expert with rows,
  // one for the down products; experts with equal row counts share a group. Needs even hidden
  // and intermediate sizes (cuBLAS's 4-byte pointer alignment for bf16 grouped products).
  kGrouped,
  // One cublasGemmEx per product and expert with rows (3 per expert), in order on the caller's
  // stream. Any sizes.
  kPerExpert,
  // As kPerExpert, with the experts spread over kExpertStreams internal streams (an expert's
  // gate, up, SwiGLU and down in order on one of them, the most rows first onto the least
  // loaded), forked from and joined back to the caller's stream: small products run
  // side by side. Any sizes.
  kMultiStream,
  // For many rows per expert: each expert's rows are copied into a padded scratch at a multiple
  // of kBucketRows rows and its row count rounded up to one (the padding rows' outputs are
  // discarded), so the experts fall into a few buckets of equal padded size. One
  // cublasGemmGroupedBatchedEx call (one group per bucket) for the gate and up products, one for
  // the down products, then the valid rows are copied back to out. Costs two row copies
  // (rows x hidden bf16 each way) and up to kBucketRows - 1 padding rows per expert. Needs even
  // hidden and intermediate sizes, as kGrouped. The padded scratch is allocated by the first
  // call that needs more than it holds (a synchronizing cudaMalloc: warm up with the largest
  // layout before capturing a CUDA graph).
  kBucketed,
  // As kBucketed, with one cublasGemmBatchedEx per bucket (and product) in place of the grouped
  // call: cuBLAS's batched kernels for a handful of uniform batches. Even sizes, as kBucketed.
  kBucketedBatched,
  // Per call, by the mean rows per expert with rows: kBucketedBatched from kAutoBucketMeanRows
  // up, kGrouped below. On an H200 at DeepSeek-V2 sizes (bench/RESULTS.md, 2026-11-28) grouped
  // won at 5 rows per expert (1.80 vs 1.89 ms), they tied at 38 (2.05 vs 2.02) and
  // bucketed-batched won at 154 (2.71 vs 4.40). Even sizes, as kGrouped.
  kAuto,
};

inline constexpr int64_t kAutoBucketMeanRows = 32;

inline constexpr int kExpertStreams = 4;
// kBucketed: the row granule of the padded layout (a multiple of cuBLAS's row tiles).
inline constexpr int kBucketRows = 64;

// Owns a cuBLAS handle, its workspace and the scratch for the gate and up products. Move-only.
// Not thread-safe; calls to Run must be ordered (one stream, or the caller orders them): they
// share the scratch.
class GroupedExpertFfn {
 public:
  // Scratch for up to max_rows rows (the bucketed paths size theirs on first use).
  // InvalidArgument for non-positive sizes or, with kGrouped, kBucketed or kBucketedBatched, an
  // odd hidden or intermediate size; ResourceExhausted when the device lacks the memory;
  // Internal/Unavailable when cuBLAS cannot start.
  static StatusOr<GroupedExpertFfn> Create(int64_t max_rows, int32_t hidden, int32_t intermediate,
                                           ExpertGemmPath path = ExpertGemmPath::kAuto);

  GroupedExpertFfn(GroupedExpertFfn&& other) noexcept;
  GroupedExpertFfn& operator=(GroupedExpertFfn&& other) noexcept;
  GroupedExpertFfn(const GroupedExpertFfn&) = delete;
  GroupedExpertFfn& operator=(const GroupedExpertFfn&) = delete;
  ~GroupedExpertFfn();

  // x: bf16 [rows x hidden] grouped by expert: expert e's rows are [offsets[e], offsets[e+1]).
  // offsets is a HOST array of w.num_experts + 1 (the dispatch layout's prefix sums, copied back
  // once per layer), offsets[0] == 0, non-decreasing, rows = offsets[E] <= max_rows.
  // out: bf16 [rows x hidden] = down(silu(x gate_e^T) * (x up_e^T)) per row. Every product
  // accumulates in f32; the gate and up products are stored as bf16 (as a bf16 framework does),
  // the SwiGLU product is computed in f32 from them and rounded to bf16 once, and out is rounded
  // to bf16. Experts with no rows cost nothing; every element of out[0, rows) is written.
  // x, out: device, 16-byte aligned, not overlapping each other or the weights.
  // Returns InvalidArgument for shapes that differ from Create's or bad offsets, and the first
  // cuBLAS or launch error otherwise (naming the call); the work completes asynchronously on
  // `stream`. Enqueues no host synchronization, so it can be captured in a CUDA graph (the
  // offsets are baked into the capture).
  Status Run(const ExpertWeightsBf16& w, const uint16_t* x, const int64_t* offsets, uint16_t* out,
             Stream stream);

  int64_t max_rows() const { return max_rows_; }
  ExpertGemmPath path() const { return path_; }

 private:
  GroupedExpertFfn() = default;
  Status RunGrouped(const ExpertWeightsBf16& w, const uint16_t* x, uint16_t* out, Stream stream);
  Status RunPerExpert(const ExpertWeightsBf16& w, const uint16_t* x, uint16_t* out, Stream stream);
  Status RunMultiStream(const ExpertWeightsBf16& w, const uint16_t* x, uint16_t* out,
                        Stream stream);
  Status RunBucketed(const ExpertWeightsBf16& w, const uint16_t* x, uint16_t* out, bool batched,
                     Stream stream);
  // The grouped products for experts whose rows are [starts[a], starts[a] + rows[a]) of x, the
  // gate and up scratch and out (rows sorted ascending so equal counts are adjacent; the rows
  // of all experts cover [0, total_rows) of the scratch): one cuBLAS group per run of equal
  // counts, in one grouped call per product or (per_group_batched) one batched call per group.
  Status RunProducts(const ExpertWeightsBf16& w, const uint16_t* x, uint16_t* out,
                     const std::vector<int64_t>& starts, const std::vector<int32_t>& rows,
                     int64_t total_rows, bool per_group_batched, Stream stream);
  void Release();

  cublasContext* handle_ = nullptr;
  ExpertGemmPath path_ = ExpertGemmPath::kGrouped;
  int64_t max_rows_ = 0;
  int32_t hidden_ = 0, intermediate_ = 0;
  DeviceBuffer workspace_;
  DeviceBuffer gate_;  // [max_rows x I] bf16; the SwiGLU product overwrites it in place
  DeviceBuffer up_;    // [max_rows x I] bf16
  // Device pointer arrays of the grouped calls, for up to pointer_experts_ experts with rows.
  DeviceBuffer pointers_;
  int32_t pointer_experts_ = 0;
  // Host scratch reused across calls: the experts with rows (sorted by row count), their first
  // row and row count, and the grouped calls' per-group arrays.
  std::vector<int32_t> active_experts_;
  std::vector<int64_t> active_starts_;
  std::vector<int32_t> active_rows_;
  std::vector<int32_t> group_rows_, group_experts_;
  // kBucketed: the padded copy of x (then of out) and the gate and up scratch, sized for
  // padded_capacity_ rows on first use (grown when a call needs more); each active expert's
  // first padded row and padded row count.
  DeviceBuffer padded_x_;
  int64_t padded_capacity_ = 0;
  std::vector<int64_t> padded_starts_;
  std::vector<int32_t> padded_rows_;
  // kMultiStream: the internal streams, a cuBLAS handle and workspace bound to each, and events
  // (cudaEvent_t) for the fork (index 0) and each stream's join.
  std::vector<Stream> streams_;
  std::vector<cublasContext*> stream_handles_;
  std::vector<DeviceBuffer> stream_workspaces_;
  std::vector<void*> events_;
  std::vector<int64_t> stream_load_;
};

// y[m x n] = x[m x k] * w[n x k]^T, bf16 in and out, f32 accumulation (cuBLAS). The dense
// ceiling the grouped FFN is measured against. Move-only; owns a cuBLAS handle and workspace.
class DenseGemmBf16 {
 public:
  static StatusOr<DenseGemmBf16> Create();

  DenseGemmBf16(DenseGemmBf16&& other) noexcept;
  DenseGemmBf16& operator=(DenseGemmBf16&& other) noexcept;
  DenseGemmBf16(const DenseGemmBf16&) = delete;
  DenseGemmBf16& operator=(const DenseGemmBf16&) = delete;
  ~DenseGemmBf16();

  // x, w, y: device, 16-byte aligned, y not overlapping x or w. InvalidArgument for sizes that
  // are negative or past cuBLAS's 32-bit range; the cuBLAS error otherwise. Asynchronous on
  // `stream`. m == 0 or n == 0 does nothing; k == 0 writes zeros.
  Status Run(const uint16_t* x, const uint16_t* w, uint16_t* y, int64_t m, int64_t n, int64_t k,
             Stream stream);

 private:
  DenseGemmBf16() = default;
  cublasContext* handle_ = nullptr;
  DeviceBuffer workspace_;
};

}  // namespace kubemoe::cuda
