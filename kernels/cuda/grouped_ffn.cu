#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <string>
#include <utility>

#include "kernels/cuda/grouped_ffn.h"

namespace kubemoe::cuda {
namespace {

// cuBLAS's recommended user workspace on Hopper; more than enough for the split-K kernels it may
// pick for the few-row products of lightly loaded experts.
constexpr size_t kWorkspaceBytes = size_t{32} << 20;
constexpr int kThreads = 256;
// Experts whose pointers one FillPointers launch writes: its parameters (about 3.2 KB) stay under
// the classic 4 KB kernel-parameter limit.
constexpr int kFillChunk = 256;

Status FromCublas(cublasStatus_t status, const std::string& what) {
  if (status == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  std::string message =
      what + ": " + cublasGetStatusName(status) + " (" + cublasGetStatusString(status) + ")";
  if (status == CUBLAS_STATUS_ALLOC_FAILED) return ResourceExhausted(std::move(message));
  if (status == CUBLAS_STATUS_NOT_INITIALIZED) return Unavailable(std::move(message));
  return Internal(std::move(message));
}

Status FromCuda(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::Ok();
  std::string message =
      std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
  if (err == cudaErrorMemoryAllocation) return ResourceExhausted(std::move(message));
  return Internal(std::move(message));
}

// A handle whose reductions accumulate in f32 even when the output is bf16 (by default cuBLAS may
// reduce split-K partial sums in the output type), with the math mode otherwise default.
StatusOr<cublasHandle_t> CreateHandle(const char* owner) {
  cublasHandle_t handle = nullptr;
  KUBEMOE_RETURN_IF_ERROR(FromCublas(cublasCreate(&handle), std::string(owner) + ": cublasCreate"));
  const auto mode = static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH |
                                              CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION);
  const Status set =
      FromCublas(cublasSetMathMode(handle, mode), std::string(owner) + ": cublasSetMathMode");
  if (!set.ok()) {
    cublasDestroy(handle);
    return set;
  }
  return handle;
}

// cublasSetStream resets the workspace to cuBLAS's default pool, so the workspace is set after it
// on every call.
Status BindStream(cublasHandle_t handle, const DeviceBuffer& workspace, Stream stream,
                  const char* owner) {
  KUBEMOE_RETURN_IF_ERROR(
      FromCublas(cublasSetStream(handle, stream), std::string(owner) + ": cublasSetStream"));
  return FromCublas(cublasSetWorkspace(handle, workspace.data(), workspace.bytes()),
                    std::string(owner) + ": cublasSetWorkspace");
}

// y[m x n] = x[m x k] * w[n x k]^T in row-major terms. cuBLAS is column-major, where the same
// memory holds y^T [n x m] = w [n x k] * x^T [k x m]: op(A) = w (A stored k x n, transposed),
// op(B) = x^T (B stored k x m as is).
cublasStatus_t LinearBf16(cublasHandle_t handle, const uint16_t* x, int m, int k, const uint16_t* w,
                          int n, uint16_t* y) {
  const float alpha = 1.0f;
  const float beta = 0.0f;
  return cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_16BF, k, x,
                      CUDA_R_16BF, k, &beta, y, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                      CUBLAS_GEMM_DEFAULT);
}

__device__ __forceinline__ float SiluMul(float g, float u) { return g / (1.0f + __expf(-g)) * u; }

__device__ __forceinline__ uint32_t SiluMulPair(uint32_t g, uint32_t u) {
  const float lo = SiluMul(__uint_as_float(g << 16), __uint_as_float(u << 16));
  const float hi = SiluMul(__uint_as_float(g & 0xFFFF0000u), __uint_as_float(u & 0xFFFF0000u));
  return uint32_t{__bfloat16_as_ushort(__float2bfloat16_rn(lo))} |
         (uint32_t{__bfloat16_as_ushort(__float2bfloat16_rn(hi))} << 16);
}

// gate[i] = bf16(silu(gate[i]) * up[i]) for n elements: the first `head` one by one up to a
// 16-byte boundary, then 8 per thread step in 16-byte accesses, then the last few one by one.
// REQUIRES: gate and up equally aligned modulo 16 bytes (slices at one offset of two buffers).
__global__ void SiluMulBf16Kernel(uint16_t* gate, const uint16_t* up, size_t n, unsigned head) {
  const size_t vectors = (n - head) / 8;
  uint4* gate_vec = reinterpret_cast<uint4*>(gate + head);
  const uint4* up_vec = reinterpret_cast<const uint4*>(up + head);
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < vectors;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const uint4 g = gate_vec[i];
    const uint4 u = up_vec[i];
    gate_vec[i] = make_uint4(SiluMulPair(g.x, u.x), SiluMulPair(g.y, u.y), SiluMulPair(g.z, u.z),
                             SiluMulPair(g.w, u.w));
  }
  if (blockIdx.x != 0) return;
  // Threads 0-7 take the head, threads 8-15 the tail (each under 8 elements).
  const size_t tail_begin = head + vectors * 8;
  size_t i = n;
  if (threadIdx.x < head) i = threadIdx.x;
  if (threadIdx.x >= 8 && threadIdx.x < 16) i = tail_begin + (threadIdx.x - 8);
  if (i < n && (i < head || i >= tail_begin)) {
    const float g = __uint_as_float(static_cast<uint32_t>(gate[i]) << 16);
    const float u = __uint_as_float(static_cast<uint32_t>(up[i]) << 16);
    gate[i] = __bfloat16_as_ushort(__float2bfloat16_rn(SiluMul(g, u)));
  }
}

Status SiluMulBf16(uint16_t* gate, const uint16_t* up, size_t n, Stream stream) {
  if (n == 0) return Status::Ok();
  const unsigned misaligned = static_cast<unsigned>(reinterpret_cast<uintptr_t>(gate) & 15);
  const unsigned head = static_cast<unsigned>(std::min<size_t>(n, ((16 - misaligned) & 15) / 2));
  const size_t blocks = ((n - head) / 8 + kThreads - 1) / kThreads;
  const int grid = static_cast<int>(std::clamp<size_t>(blocks, 1, 65535));
  SiluMulBf16Kernel<<<grid, kThreads, 0, stream>>>(gate, up, n, head);
  return LastLaunchError("grouped FFN SwiGLU kernel");
}

// The grouped calls' pointer arrays for a chunk of experts with rows, written on the device from
// values passed by value, so a call needs no host-to-device copy (and a graph capture keeps them).
// Active expert a (in group order) owns gate/up problems 2a (gate) and 2a + 1 (up) and down
// problem a.
struct PointerFill {
  const uint16_t* x;
  const uint16_t* gate_w;
  const uint16_t* up_w;
  const uint16_t* down_w;
  uint16_t* gate;
  uint16_t* up;
  uint16_t* out;
  const void** gu_a;
  const void** gu_b;
  void** gu_c;
  const void** d_a;
  const void** d_b;
  void** d_c;
  int64_t hidden;
  int64_t intermediate;
  int32_t first;  // active index of expert[0]
  int32_t count;
  int32_t expert[kFillChunk];
  int64_t start[kFillChunk];  // first row
};

__global__ void FillPointersKernel(const PointerFill p) {
  const int i = threadIdx.x;
  if (i >= p.count) return;
  const int64_t a = p.first + i;
  const int64_t matrix = p.intermediate * p.hidden;
  const int64_t e = p.expert[i];
  const int64_t row = p.start[i];
  p.gu_a[2 * a] = p.gate_w + e * matrix;
  p.gu_a[2 * a + 1] = p.up_w + e * matrix;
  p.gu_b[2 * a] = p.x + row * p.hidden;
  p.gu_b[2 * a + 1] = p.x + row * p.hidden;
  p.gu_c[2 * a] = p.gate + row * p.intermediate;
  p.gu_c[2 * a + 1] = p.up + row * p.intermediate;
  p.d_a[a] = p.down_w + e * matrix;
  p.d_b[a] = p.gate + row * p.intermediate;  // the SwiGLU product, in place
  p.d_c[a] = p.out + row * p.hidden;
}

// kBucketed's row copies for a chunk of experts, tables passed by value (about 3 KB, under the
// 4 KB parameter limit): expert i's rows[i] rows from src row src_row[i] to dst row dst_row[i],
// rows of row_units units of T. blockIdx.y is the expert, blockIdx.x strides over its elements.
struct RowCopy {
  const void* src;
  void* dst;
  int64_t row_units;
  int32_t count;
  int32_t src_row[kFillChunk];
  int32_t dst_row[kFillChunk];
  int32_t rows[kFillChunk];
};

template <typename T>
__global__ void CopyRowsKernel(const RowCopy p) {
  const int i = blockIdx.y;
  if (i >= p.count) return;
  const T* src = static_cast<const T*>(p.src) + p.src_row[i] * p.row_units;
  T* dst = static_cast<T*>(p.dst) + p.dst_row[i] * p.row_units;
  const int64_t n = p.rows[i] * p.row_units;
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < n;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[j] = src[j];
  }
}

// Copies each expert a's rows[a] rows of row_elems bf16 from src row src_rows[a] to dst row
// dst_rows[a]: 16-byte vectors when the rows allow (row_elems % 8 == 0, both bases 16-byte
// aligned), single elements otherwise. REQUIRES: every row index and count fits int32.
Status CopyRows(const uint16_t* src, uint16_t* dst, int64_t row_elems,
                const std::vector<int64_t>& src_rows, const std::vector<int64_t>& dst_rows,
                const std::vector<int32_t>& rows, Stream stream) {
  const bool vector = row_elems % 8 == 0 && reinterpret_cast<uintptr_t>(src) % 16 == 0 &&
                      reinterpret_cast<uintptr_t>(dst) % 16 == 0;
  RowCopy copy{};
  copy.src = src;
  copy.dst = dst;
  copy.row_units = vector ? row_elems / 8 : row_elems;
  const int32_t experts = static_cast<int32_t>(rows.size());
  for (int32_t first = 0; first < experts; first += kFillChunk) {
    copy.count = std::min(kFillChunk, experts - first);
    int64_t most = 0;
    for (int32_t i = 0; i < copy.count; ++i) {
      copy.src_row[i] = static_cast<int32_t>(src_rows[first + i]);
      copy.dst_row[i] = static_cast<int32_t>(dst_rows[first + i]);
      copy.rows[i] = rows[first + i];
      most = std::max<int64_t>(most, rows[first + i]);
    }
    // About 4 units per thread for the largest expert of the chunk.
    const int64_t blocks = (most * copy.row_units + 4 * kThreads - 1) / (4 * kThreads);
    const dim3 grid(static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, 4096)),
                    static_cast<unsigned>(copy.count));
    if (vector) {
      CopyRowsKernel<uint4><<<grid, kThreads, 0, stream>>>(copy);
    } else {
      CopyRowsKernel<uint16_t><<<grid, kThreads, 0, stream>>>(copy);
    }
    KUBEMOE_RETURN_IF_ERROR(LastLaunchError("grouped FFN row-copy kernel"));
  }
  return Status::Ok();
}

}  // namespace

StatusOr<GroupedExpertFfn> GroupedExpertFfn::Create(int64_t max_rows, int32_t hidden,
                                                    int32_t intermediate, ExpertGemmPath path) {
  if (max_rows <= 0 || max_rows > INT_MAX || hidden <= 0 || intermediate <= 0) {
    return InvalidArgument("GroupedExpertFfn: max_rows (" + std::to_string(max_rows) +
                           ") must be in [1, 2^31), hidden (" + std::to_string(hidden) +
                           ") and intermediate (" + std::to_string(intermediate) + ") positive");
  }
  const bool needs_even = path == ExpertGemmPath::kGrouped || path == ExpertGemmPath::kBucketed ||
                          path == ExpertGemmPath::kBucketedBatched || path == ExpertGemmPath::kAuto;
  if (needs_even && (hidden % 2 != 0 || intermediate % 2 != 0)) {
    return InvalidArgument("GroupedExpertFfn: the grouped cuBLAS paths need even hidden (" +
                           std::to_string(hidden) + ") and intermediate (" +
                           std::to_string(intermediate) + ") sizes; use kPerExpert");
  }
  GroupedExpertFfn ffn;
  StatusOr<cublasHandle_t> handle = CreateHandle("GroupedExpertFfn");
  if (!handle.ok()) return handle.status();
  ffn.handle_ = *handle;
  ffn.path_ = path;
  ffn.max_rows_ = max_rows;
  ffn.hidden_ = hidden;
  ffn.intermediate_ = intermediate;
  const size_t scratch_bytes = static_cast<size_t>(max_rows) * intermediate * sizeof(uint16_t);
  StatusOr<DeviceBuffer> workspace = DeviceBuffer::Allocate(kWorkspaceBytes);
  if (!workspace.ok()) return workspace.status();
  ffn.workspace_ = std::move(*workspace);
  // The bucketed paths size their gate and up scratch to the padded layout on first use.
  if (path != ExpertGemmPath::kBucketed && path != ExpertGemmPath::kBucketedBatched) {
    StatusOr<DeviceBuffer> gate = DeviceBuffer::Allocate(scratch_bytes);
    if (!gate.ok()) return gate.status();
    ffn.gate_ = std::move(*gate);
    StatusOr<DeviceBuffer> up = DeviceBuffer::Allocate(scratch_bytes);
    if (!up.ok()) return up.status();
    ffn.up_ = std::move(*up);
  }
  if (path == ExpertGemmPath::kMultiStream) {
    for (int s = 0; s < kExpertStreams; ++s) {
      cudaStream_t side = nullptr;
      // Non-blocking: the streams order against the caller's only through the fork/join events.
      KUBEMOE_RETURN_IF_ERROR(FromCuda(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking),
                                       "GroupedExpertFfn: cudaStreamCreateWithFlags"));
      ffn.streams_.push_back(side);
      StatusOr<cublasHandle_t> side_handle = CreateHandle("GroupedExpertFfn");
      if (!side_handle.ok()) return side_handle.status();
      ffn.stream_handles_.push_back(*side_handle);
      StatusOr<DeviceBuffer> side_workspace = DeviceBuffer::Allocate(kWorkspaceBytes);
      if (!side_workspace.ok()) return side_workspace.status();
      ffn.stream_workspaces_.push_back(std::move(*side_workspace));
      KUBEMOE_RETURN_IF_ERROR(
          BindStream(*side_handle, ffn.stream_workspaces_.back(), side, "GroupedExpertFfn"));
    }
    for (int i = 0; i <= kExpertStreams; ++i) {
      cudaEvent_t event = nullptr;
      KUBEMOE_RETURN_IF_ERROR(FromCuda(cudaEventCreateWithFlags(&event, cudaEventDisableTiming),
                                       "GroupedExpertFfn: cudaEventCreateWithFlags"));
      ffn.events_.push_back(event);
    }
  }
  return StatusOr<GroupedExpertFfn>(std::move(ffn));
}

GroupedExpertFfn::GroupedExpertFfn(GroupedExpertFfn&& other) noexcept { *this = std::move(other); }

GroupedExpertFfn& GroupedExpertFfn::operator=(GroupedExpertFfn&& other) noexcept {
  if (this != &other) {
    Release();
    handle_ = std::exchange(other.handle_, nullptr);
    path_ = other.path_;
    max_rows_ = std::exchange(other.max_rows_, 0);
    hidden_ = std::exchange(other.hidden_, 0);
    intermediate_ = std::exchange(other.intermediate_, 0);
    workspace_ = std::move(other.workspace_);
    gate_ = std::move(other.gate_);
    up_ = std::move(other.up_);
    pointers_ = std::move(other.pointers_);
    pointer_experts_ = std::exchange(other.pointer_experts_, 0);
    active_experts_ = std::move(other.active_experts_);
    active_starts_ = std::move(other.active_starts_);
    active_rows_ = std::move(other.active_rows_);
    group_rows_ = std::move(other.group_rows_);
    group_experts_ = std::move(other.group_experts_);
    padded_x_ = std::move(other.padded_x_);
    padded_capacity_ = std::exchange(other.padded_capacity_, 0);
    padded_starts_ = std::move(other.padded_starts_);
    padded_rows_ = std::move(other.padded_rows_);
    streams_ = std::exchange(other.streams_, {});
    stream_handles_ = std::exchange(other.stream_handles_, {});
    stream_workspaces_ = std::exchange(other.stream_workspaces_, {});
    events_ = std::exchange(other.events_, {});
    stream_load_ = std::move(other.stream_load_);
  }
  return *this;
}

GroupedExpertFfn::~GroupedExpertFfn() { Release(); }

void GroupedExpertFfn::Release() {
  if (handle_ != nullptr) cublasDestroy(handle_);
  handle_ = nullptr;
  for (cublasContext* side : stream_handles_) cublasDestroy(side);
  stream_handles_.clear();
  for (Stream side : streams_) cudaStreamDestroy(side);
  streams_.clear();
  for (void* event : events_) cudaEventDestroy(static_cast<cudaEvent_t>(event));
  events_.clear();
}

Status GroupedExpertFfn::Run(const ExpertWeightsBf16& w, const uint16_t* x, const int64_t* offsets,
                             uint16_t* out, Stream stream) {
  if (handle_ == nullptr) return FailedPrecondition("GroupedExpertFfn: used after a move");
  if (w.num_experts <= 0 || w.hidden != hidden_ || w.intermediate != intermediate_) {
    return InvalidArgument("GroupedExpertFfn::Run: weights of " + std::to_string(w.num_experts) +
                           " experts, hidden " + std::to_string(w.hidden) + ", intermediate " +
                           std::to_string(w.intermediate) + "; created for hidden " +
                           std::to_string(hidden_) + ", intermediate " +
                           std::to_string(intermediate_));
  }
  if (offsets == nullptr || offsets[0] != 0) {
    return InvalidArgument("GroupedExpertFfn::Run: offsets must start at 0");
  }
  // The experts with rows, ordered by row count so equal counts form one cuBLAS group.
  active_experts_.clear();
  for (int32_t e = 0; e < w.num_experts; ++e) {
    const int64_t rows = offsets[e + 1] - offsets[e];
    if (rows < 0 || offsets[e + 1] > max_rows_) {
      return InvalidArgument("GroupedExpertFfn::Run: offsets[" + std::to_string(e + 1) +
                             "] = " + std::to_string(offsets[e + 1]) + " after offsets[" +
                             std::to_string(e) + "] = " + std::to_string(offsets[e]) +
                             " (must be non-decreasing and at most max_rows " +
                             std::to_string(max_rows_) + ")");
    }
    if (rows > 0) active_experts_.push_back(e);
  }
  if (active_experts_.empty()) return Status::Ok();
  if (x == nullptr || out == nullptr || w.gate == nullptr || w.up == nullptr || w.down == nullptr) {
    return InvalidArgument("GroupedExpertFfn::Run: null device pointer");
  }
  std::stable_sort(active_experts_.begin(), active_experts_.end(), [&](int32_t a, int32_t b) {
    return offsets[a + 1] - offsets[a] < offsets[b + 1] - offsets[b];
  });
  active_starts_.resize(active_experts_.size());
  active_rows_.resize(active_experts_.size());
  for (size_t a = 0; a < active_experts_.size(); ++a) {
    const int32_t e = active_experts_[a];
    active_starts_[a] = offsets[e];
    active_rows_[a] = static_cast<int32_t>(offsets[e + 1] - offsets[e]);
  }
  KUBEMOE_RETURN_IF_ERROR(BindStream(handle_, workspace_, stream, "GroupedExpertFfn"));
  // Each path writes the gate and up products of rows [0, rows), the SwiGLU product over them,
  // then every row of out: the experts with rows cover [0, rows).
  switch (path_) {
    case ExpertGemmPath::kGrouped:
      return RunGrouped(w, x, out, stream);
    case ExpertGemmPath::kBucketed:
      return RunBucketed(w, x, out, /*batched=*/false, stream);
    case ExpertGemmPath::kBucketedBatched:
      return RunBucketed(w, x, out, /*batched=*/true, stream);
    case ExpertGemmPath::kAuto: {
      const int64_t rows = offsets[w.num_experts];
      const int64_t active = static_cast<int64_t>(active_experts_.size());
      if (rows >= kAutoBucketMeanRows * active) {
        return RunBucketed(w, x, out, /*batched=*/true, stream);
      }
      return RunGrouped(w, x, out, stream);
    }
    case ExpertGemmPath::kPerExpert:
      return RunPerExpert(w, x, out, stream);
    case ExpertGemmPath::kMultiStream:
      return RunMultiStream(w, x, out, stream);
  }
  return Internal("GroupedExpertFfn: unknown ExpertGemmPath");
}

Status GroupedExpertFfn::RunPerExpert(const ExpertWeightsBf16& w, const uint16_t* x, uint16_t* out,
                                      Stream stream) {
  const int64_t matrix = int64_t{hidden_} * intermediate_;
  uint16_t* gate = gate_.as<uint16_t>();
  uint16_t* up = up_.as<uint16_t>();
  int64_t rows = 0;
  for (size_t a = 0; a < active_experts_.size(); ++a) {
    const int64_t e = active_experts_[a];
    const int64_t start = active_starts_[a];
    const int r = active_rows_[a];
    rows += r;
    const uint16_t* xe = x + start * hidden_;
    KUBEMOE_RETURN_IF_ERROR(
        FromCublas(LinearBf16(handle_, xe, r, hidden_, w.gate + e * matrix, intermediate_,
                              gate + start * intermediate_),
                   "GroupedExpertFfn: cublasGemmEx (gate, expert " + std::to_string(e) + ")"));
    KUBEMOE_RETURN_IF_ERROR(
        FromCublas(LinearBf16(handle_, xe, r, hidden_, w.up + e * matrix, intermediate_,
                              up + start * intermediate_),
                   "GroupedExpertFfn: cublasGemmEx (up, expert " + std::to_string(e) + ")"));
  }
  KUBEMOE_RETURN_IF_ERROR(SiluMulBf16(gate, up, static_cast<size_t>(rows) * intermediate_, stream));
  for (size_t a = 0; a < active_experts_.size(); ++a) {
    const int64_t e = active_experts_[a];
    const int64_t start = active_starts_[a];
    KUBEMOE_RETURN_IF_ERROR(
        FromCublas(LinearBf16(handle_, gate + start * intermediate_, active_rows_[a], intermediate_,
                              w.down + e * matrix, hidden_, out + start * hidden_),
                   "GroupedExpertFfn: cublasGemmEx (down, expert " + std::to_string(e) + ")"));
  }
  return Status::Ok();
}

Status GroupedExpertFfn::RunMultiStream(const ExpertWeightsBf16& w, const uint16_t* x,
                                        uint16_t* out, Stream stream) {
  KUBEMOE_RETURN_IF_ERROR(FromCuda(cudaEventRecord(static_cast<cudaEvent_t>(events_[0]), stream),
                                   "GroupedExpertFfn: cudaEventRecord (fork)"));
  for (Stream side : streams_) {
    KUBEMOE_RETURN_IF_ERROR(
        FromCuda(cudaStreamWaitEvent(side, static_cast<cudaEvent_t>(events_[0]), 0),
                 "GroupedExpertFfn: cudaStreamWaitEvent (fork)"));
  }
  const int64_t matrix = int64_t{hidden_} * intermediate_;
  uint16_t* gate = gate_.as<uint16_t>();
  uint16_t* up = up_.as<uint16_t>();
  stream_load_.assign(streams_.size(), 0);
  Status enqueued = Status::Ok();
  // active_experts_ is sorted by row count: from the most rows down, each onto the least loaded.
  for (size_t a = active_experts_.size(); a-- > 0 && enqueued.ok();) {
    const size_t s =
        std::min_element(stream_load_.begin(), stream_load_.end()) - stream_load_.begin();
    const int64_t e = active_experts_[a];
    const int64_t start = active_starts_[a];
    const int r = active_rows_[a];
    stream_load_[s] += r;
    cublasHandle_t side = stream_handles_[s];
    const uint16_t* xe = x + start * hidden_;
    uint16_t* gate_e = gate + start * intermediate_;
    uint16_t* up_e = up + start * intermediate_;
    const std::string which = ", expert " + std::to_string(e) + ")";
    enqueued =
        FromCublas(LinearBf16(side, xe, r, hidden_, w.gate + e * matrix, intermediate_, gate_e),
                   "GroupedExpertFfn: cublasGemmEx (gate" + which);
    if (enqueued.ok()) {
      enqueued =
          FromCublas(LinearBf16(side, xe, r, hidden_, w.up + e * matrix, intermediate_, up_e),
                     "GroupedExpertFfn: cublasGemmEx (up" + which);
    }
    if (enqueued.ok()) {
      enqueued = SiluMulBf16(gate_e, up_e, static_cast<size_t>(r) * intermediate_, streams_[s]);
    }
    if (enqueued.ok()) {
      enqueued = FromCublas(LinearBf16(side, gate_e, r, intermediate_, w.down + e * matrix, hidden_,
                                       out + start * hidden_),
                            "GroupedExpertFfn: cublasGemmEx (down" + which);
    }
  }
  // Join every stream back, even after an error, so no work outlives the caller's ordering.
  for (size_t s = 0; s < streams_.size(); ++s) {
    auto join = static_cast<cudaEvent_t>(events_[1 + s]);
    const Status recorded =
        FromCuda(cudaEventRecord(join, streams_[s]), "GroupedExpertFfn: cudaEventRecord (join)");
    const Status waited = FromCuda(cudaStreamWaitEvent(stream, join, 0),
                                   "GroupedExpertFfn: cudaStreamWaitEvent (join)");
    if (enqueued.ok()) enqueued = recorded.ok() ? waited : recorded;
  }
  return enqueued;
}

Status GroupedExpertFfn::RunGrouped(const ExpertWeightsBf16& w, const uint16_t* x, uint16_t* out,
                                    Stream stream) {
  int64_t rows = 0;
  for (int32_t r : active_rows_) rows += r;
  return RunProducts(w, x, out, active_starts_, active_rows_, rows, /*per_group_batched=*/false,
                     stream);
}

Status GroupedExpertFfn::RunBucketed(const ExpertWeightsBf16& w, const uint16_t* x, uint16_t* out,
                                     bool batched,
                                     Stream stream) {
  // The padded layout: active experts in their (ascending row count) order, each at a multiple
  // of kBucketRows rows, its count rounded up to one, so equal padded counts are adjacent.
  const size_t active = active_experts_.size();
  padded_starts_.resize(active);
  padded_rows_.resize(active);
  int64_t padded = 0;
  for (size_t a = 0; a < active; ++a) {
    const int64_t rounded =
        (int64_t{active_rows_[a]} + kBucketRows - 1) / kBucketRows * kBucketRows;
    padded_starts_[a] = padded;
    padded_rows_[a] = static_cast<int32_t>(std::min<int64_t>(rounded, INT_MAX));
    padded += rounded;
  }
  if (padded > INT_MAX) {
    return InvalidArgument("GroupedExpertFfn::Run: " + std::to_string(padded) +
                           " padded rows exceed the bucketed path's 32-bit row indices");
  }
  if (padded_capacity_ < padded) {
    // Grown with a little slack so nearby layouts reuse it. The padding rows start as zeros (and
    // later hold rows of earlier calls): finite inputs whose outputs are never read.
    const int64_t capacity = std::min<int64_t>(
        INT_MAX, (padded + padded / 8 + kBucketRows - 1) / kBucketRows * kBucketRows);
    padded_x_ = DeviceBuffer();
    gate_ = DeviceBuffer();
    up_ = DeviceBuffer();
    padded_capacity_ = 0;
    const size_t x_bytes = static_cast<size_t>(capacity) * hidden_ * sizeof(uint16_t);
    const size_t inter_bytes = static_cast<size_t>(capacity) * intermediate_ * sizeof(uint16_t);
    StatusOr<DeviceBuffer> padded_x = DeviceBuffer::Allocate(x_bytes);
    if (!padded_x.ok()) return padded_x.status();
    KUBEMOE_RETURN_IF_ERROR(padded_x->Fill(0));
    StatusOr<DeviceBuffer> gate = DeviceBuffer::Allocate(inter_bytes);
    if (!gate.ok()) return gate.status();
    StatusOr<DeviceBuffer> up = DeviceBuffer::Allocate(inter_bytes);
    if (!up.ok()) return up.status();
    padded_x_ = std::move(*padded_x);
    gate_ = std::move(*gate);
    up_ = std::move(*up);
    padded_capacity_ = capacity;
  }
  uint16_t* padded_x = padded_x_.as<uint16_t>();
  KUBEMOE_RETURN_IF_ERROR(
      CopyRows(x, padded_x, hidden_, active_starts_, padded_starts_, active_rows_, stream));
  // The down products overwrite the padded rows in place (the gate and up products have read
  // them by then: one stream).
  KUBEMOE_RETURN_IF_ERROR(RunProducts(w, padded_x, padded_x, padded_starts_, padded_rows_, padded,
                                      batched, stream));
  return CopyRows(padded_x, out, hidden_, padded_starts_, active_starts_, active_rows_, stream);
}

Status GroupedExpertFfn::RunProducts(const ExpertWeightsBf16& w, const uint16_t* x, uint16_t* out,
                                     const std::vector<int64_t>& starts,
                                     const std::vector<int32_t>& rows, int64_t total_rows,
                                     bool per_group_batched, Stream stream) {
  const int32_t active = static_cast<int32_t>(rows.size());
  // Pointer arrays: 2 per active expert for each of A, B, C of the gate/up call, 1 each for the
  // down call. Sized for every expert of the layer on first use, so later calls allocate nothing.
  if (pointer_experts_ < active) {
    const int32_t capacity = std::max(active, w.num_experts);
    StatusOr<DeviceBuffer> table = DeviceBuffer::Allocate(size_t{9} * capacity * sizeof(void*));
    if (!table.ok()) return table.status();
    pointers_ = std::move(*table);
    pointer_experts_ = capacity;
  }
  const int64_t c = pointer_experts_;
  void** table = pointers_.as<void*>();
  PointerFill fill{};
  fill.x = x;
  fill.gate_w = w.gate;
  fill.up_w = w.up;
  fill.down_w = w.down;
  fill.gate = gate_.as<uint16_t>();
  fill.up = up_.as<uint16_t>();
  fill.out = out;
  fill.gu_a = const_cast<const void**>(table);
  fill.gu_b = const_cast<const void**>(table + 2 * c);
  fill.gu_c = table + 4 * c;
  fill.d_a = const_cast<const void**>(table + 6 * c);
  fill.d_b = const_cast<const void**>(table + 7 * c);
  fill.d_c = table + 8 * c;
  fill.hidden = hidden_;
  fill.intermediate = intermediate_;
  for (int32_t first = 0; first < active; first += kFillChunk) {
    fill.first = first;
    fill.count = std::min(kFillChunk, active - first);
    for (int32_t i = 0; i < fill.count; ++i) {
      fill.expert[i] = active_experts_[first + i];
      fill.start[i] = starts[first + i];
    }
    FillPointersKernel<<<1, kFillChunk, 0, stream>>>(fill);
    KUBEMOE_RETURN_IF_ERROR(LastLaunchError("grouped FFN pointer-array kernel"));
  }

  // Groups: runs of experts with equal row counts (rows is sorted ascending).
  group_rows_.clear();
  group_experts_.clear();
  for (int32_t a = 0; a < active; ++a) {
    if (group_rows_.empty() || group_rows_.back() != rows[a]) {
      group_rows_.push_back(rows[a]);
      group_experts_.push_back(0);
    }
    ++group_experts_.back();
  }
  const size_t groups = group_rows_.size();
  const float one = 1.0f;
  const float zero = 0.0f;

  // One kind of product for every active expert: row-major C_e [r x m] = X_e [r x k] * W_e
  // [m x k]^T, which in cuBLAS's column-major terms is m, n = r, k, A = W_e (ld k, transposed),
  // B = X_e (ld k), C (ld m). per_expert problems per expert (2: gate and up). Either one
  // cublasGemmBatchedEx per group (experts of equal rows) or one grouped call for all groups.
  auto products = [&](int m, int k, const void** a, const void** b, void** c, int per_expert,
                      const char* what) -> Status {
    if (per_group_batched) {
      int32_t first = 0;
      for (size_t g = 0; g < groups; ++g) {
        const int32_t count = group_experts_[g];
        const int64_t at = int64_t{per_expert} * first;
        KUBEMOE_RETURN_IF_ERROR(FromCublas(
            cublasGemmBatchedEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, m, group_rows_[g], k, &one,
                                a + at, CUDA_R_16BF, k, b + at, CUDA_R_16BF, k, &zero, c + at,
                                CUDA_R_16BF, m, per_expert * count, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT),
            std::string("GroupedExpertFfn: cublasGemmBatchedEx (") + what + ", " +
                std::to_string(count) + " experts of " + std::to_string(group_rows_[g]) +
                " rows)"));
        first += count;
      }
      return Status::Ok();
    }
    const std::vector<cublasOperation_t> trans_a(groups, CUBLAS_OP_T);
    const std::vector<cublasOperation_t> trans_b(groups, CUBLAS_OP_N);
    const std::vector<float> alpha(groups, 1.0f);
    const std::vector<float> beta(groups, 0.0f);
    const std::vector<int> ms(groups, m);
    const std::vector<int> ks(groups, k);
    std::vector<int> sizes(groups);
    for (size_t g = 0; g < groups; ++g) sizes[g] = per_expert * group_experts_[g];
    return FromCublas(
        cublasGemmGroupedBatchedEx(handle_, trans_a.data(), trans_b.data(), ms.data(),
                                   group_rows_.data(), ks.data(), alpha.data(), a, CUDA_R_16BF,
                                   ks.data(), b, CUDA_R_16BF, ks.data(), beta.data(), c,
                                   CUDA_R_16BF, ms.data(), static_cast<int>(groups), sizes.data(),
                                   CUBLAS_COMPUTE_32F),
        std::string("GroupedExpertFfn: cublasGemmGroupedBatchedEx (") + what + ", " +
            std::to_string(active) + " experts in " + std::to_string(groups) + " groups)");
  };

  KUBEMOE_RETURN_IF_ERROR(products(intermediate_, hidden_, fill.gu_a, fill.gu_b, fill.gu_c,
                                   /*per_expert=*/2, "gate and up"));
  KUBEMOE_RETURN_IF_ERROR(SiluMulBf16(gate_.as<uint16_t>(), up_.as<uint16_t>(),
                                      static_cast<size_t>(total_rows) * intermediate_, stream));
  return products(hidden_, intermediate_, fill.d_a, fill.d_b, fill.d_c, /*per_expert=*/1,
                  "down");
}

StatusOr<DenseGemmBf16> DenseGemmBf16::Create() {
  DenseGemmBf16 gemm;
  StatusOr<cublasHandle_t> handle = CreateHandle("DenseGemmBf16");
  if (!handle.ok()) return handle.status();
  gemm.handle_ = *handle;
  StatusOr<DeviceBuffer> workspace = DeviceBuffer::Allocate(kWorkspaceBytes);
  if (!workspace.ok()) return workspace.status();
  gemm.workspace_ = std::move(*workspace);
  return StatusOr<DenseGemmBf16>(std::move(gemm));
}

DenseGemmBf16::DenseGemmBf16(DenseGemmBf16&& other) noexcept { *this = std::move(other); }

DenseGemmBf16& DenseGemmBf16::operator=(DenseGemmBf16&& other) noexcept {
  if (this != &other) {
    if (handle_ != nullptr) cublasDestroy(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
    workspace_ = std::move(other.workspace_);
  }
  return *this;
}

DenseGemmBf16::~DenseGemmBf16() {
  if (handle_ != nullptr) cublasDestroy(handle_);
}

Status DenseGemmBf16::Run(const uint16_t* x, const uint16_t* w, uint16_t* y, int64_t m, int64_t n,
                          int64_t k, Stream stream) {
  if (handle_ == nullptr) return FailedPrecondition("DenseGemmBf16: used after a move");
  if (m < 0 || n < 0 || k < 0 || m > INT_MAX || n > INT_MAX || k > INT_MAX) {
    return InvalidArgument("DenseGemmBf16::Run: m " + std::to_string(m) + ", n " +
                           std::to_string(n) + ", k " + std::to_string(k) +
                           " must be in [0, 2^31)");
  }
  if (m == 0 || n == 0) return Status::Ok();
  if (k == 0) {
    const cudaError_t err =
        cudaMemsetAsync(y, 0, static_cast<size_t>(m) * n * sizeof(uint16_t), stream);
    if (err != cudaSuccess) {
      return Internal(std::string("DenseGemmBf16: cudaMemsetAsync: ") + cudaGetErrorName(err));
    }
    return Status::Ok();
  }
  KUBEMOE_RETURN_IF_ERROR(BindStream(handle_, workspace_, stream, "DenseGemmBf16"));
  return FromCublas(
      LinearBf16(handle_, x, static_cast<int>(m), static_cast<int>(k), w, static_cast<int>(n), y),
      "DenseGemmBf16: cublasGemmEx");
}

}  // namespace kubemoe::cuda
