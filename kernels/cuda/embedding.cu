#include <cuda_runtime.h>

#include <string>

#include "kernels/cuda/embedding.h"
#include "kernels/cuda/small_ops_util.cuh"

namespace kubemoe::cuda {
namespace {

constexpr int kThreads = 128;
constexpr uint32_t kQuietNan = 0x7FC00000u;
// Two bf16 quiet NaNs (0x7FC0) in one word: both widen to kQuietNan.
constexpr uint32_t kNanPair = 0x7FC07FC0u;

// One block per token (grid-stride over tokens). kVec: hidden % 8 == 0, table and every out row
// 16-byte aligned (checked on the host), so 8 bf16 are read and two float4 written at a time.
template <bool kVec>
__global__ void __launch_bounds__(kThreads)
    EmbedBf16Kernel(const uint16_t* table, int64_t vocab, int64_t hidden, const int32_t* ids,
                    int64_t tokens, float* out, int64_t ld_out, int32_t* bad_ids) {
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x) {
    const int64_t id = ids[t];
    float* y = out + t * ld_out;
    const bool bad = id < 0 || id >= vocab;
    if (bad && threadIdx.x == 0 && bad_ids != nullptr) atomicAdd(bad_ids, 1);
    const uint16_t* row = table + (bad ? 0 : id) * hidden;
    if constexpr (kVec) {
      for (int64_t j = static_cast<int64_t>(threadIdx.x) * 8; j < hidden; j += kThreads * 8) {
        uint4 q = make_uint4(kNanPair, kNanPair, kNanPair, kNanPair);
        if (!bad) q = *reinterpret_cast<const uint4*>(row + j);
        // Each word holds two bf16, the low half first in memory.
        *reinterpret_cast<float4*>(y + j) =
            make_float4(__uint_as_float(q.x << 16), __uint_as_float(q.x & 0xFFFF0000u),
                        __uint_as_float(q.y << 16), __uint_as_float(q.y & 0xFFFF0000u));
        *reinterpret_cast<float4*>(y + j + 4) =
            make_float4(__uint_as_float(q.z << 16), __uint_as_float(q.z & 0xFFFF0000u),
                        __uint_as_float(q.w << 16), __uint_as_float(q.w & 0xFFFF0000u));
      }
    } else {
      for (int64_t j = threadIdx.x; j < hidden; j += kThreads) {
        y[j] = __uint_as_float(bad ? kQuietNan : static_cast<uint32_t>(row[j]) << 16);
      }
    }
  }
}

}  // namespace

Status EmbedBf16(const uint16_t* table, int64_t vocab, int64_t hidden, const int32_t* ids,
                 int64_t tokens, float* out, int64_t ld_out, int32_t* bad_ids, Stream stream) {
  const std::string op = "cuda::EmbedBf16";
  if (vocab <= 0) {
    return InvalidArgument(op + ": vocab (" + std::to_string(vocab) + ") must be > 0");
  }
  if (hidden <= 0) {
    return InvalidArgument(op + ": hidden (" + std::to_string(hidden) + ") must be > 0");
  }
  if (tokens < 0) {
    return InvalidArgument(op + ": tokens (" + std::to_string(tokens) + ") must be >= 0");
  }
  if (ld_out < hidden) {
    return InvalidArgument(op + ": ld_out (" + std::to_string(ld_out) + ") must be >= hidden (" +
                           std::to_string(hidden) + ")");
  }
  if (tokens == 0) return Status::Ok();
  if (table == nullptr) return InvalidArgument(op + ": table is null");
  if (ids == nullptr) return InvalidArgument(op + ": ids is null");
  if (out == nullptr) return InvalidArgument(op + ": out is null");
  const int64_t out_bytes = SpanElements(tokens, ld_out, hidden) * 4;
  if (Overlaps(out, out_bytes, table, vocab * hidden * 2) ||
      Overlaps(out, out_bytes, ids, tokens * 4) ||
      (bad_ids != nullptr && Overlaps(out, out_bytes, bad_ids, 4))) {
    return InvalidArgument(op + ": out overlaps table, ids or bad_ids");
  }
  const bool vec = hidden % 8 == 0 && ld_out % 4 == 0 && Aligned16(table) && Aligned16(out);
  if (vec) {
    EmbedBf16Kernel<true><<<GridFor(tokens), kThreads, 0, stream>>>(table, vocab, hidden, ids,
                                                                    tokens, out, ld_out, bad_ids);
  } else {
    EmbedBf16Kernel<false><<<GridFor(tokens), kThreads, 0, stream>>>(table, vocab, hidden, ids,
                                                                     tokens, out, ld_out, bad_ids);
  }
  return LastLaunchError(op.c_str());
}

}  // namespace kubemoe::cuda
