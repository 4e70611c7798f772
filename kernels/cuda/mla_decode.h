// MLA decode attention in absorbed form (DeepSeek-V2) over a bf16 latent cache, for a batch of
// sequences of different lengths: the CUDA twin of kernels/cpu/attention.h's absorbed use, one
// query row per (sequence, head). Plain C++: no CUDA header.
//
// For sequence b and head h, with row_j = cache[row_start[b] + j] = [c_kv_j | k_pe_j]:
//   out[b, h] = sum_j softmax_j(scale * q[b, h] . row_j) * c_kv_j,   j < length[b].
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "kernels/cuda/runtime.h"

namespace kubemoe::cuda {

struct MlaDecodeShape {
  int32_t num_heads = 0;
  int32_t kv_lora_rank = 0;  // c_kv width, and the output's
  int32_t rope_dim = 0;      // k_pe width
  float softmax_scale = 0.0f;
};

// Which split kernel MlaDecode runs. Both compute the same function to bf16-probability accuracy.
//   kTensorCore:   64 heads x 32 rows per step; scores and probabilities go through shared
//                  memory between three block-wide barriers per step.
//   kTensorCoreV2: FlashAttention-2 style: each warp keeps its 16 heads' scores, softmax and
//                  probabilities in registers (P feeds the P V mma directly), partner warps split
//                  the score's k range and swap partial sums; one block-wide barrier per step;
//                  smaller position chunks (~4 blocks per SM) for a shorter tail.
// kTensorCoreV2 is the default: on an H200 (bench/RESULTS.md, 2026-11-28) it took 0.60 ms where
// kTensorCore took 0.75 (batch 64, 128 heads, lengths 1024..8192), both passing the harness.
enum class MlaDecodeVariant { kTensorCore, kTensorCoreV2 };

// Bytes of device workspace MlaDecode needs for this shape, batch, longest sequence and variant
// (0 when the arguments are invalid; MlaDecode reports why).
size_t MlaDecodeWorkspaceBytes(const MlaDecodeShape& shape, int32_t batch, int32_t max_length,
                               MlaDecodeVariant variant = MlaDecodeVariant::kTensorCoreV2);

// Tensor-core decode attention (bf16 scores' operands, bf16 probabilities, f32 accumulation and
// softmax), with each sequence's positions split across blocks and combined in a second kernel.
//   q:         bf16 [batch x num_heads x (kv_lora_rank + rope_dim)], the absorbed query
//              [q_nope W_UK | q_pe].
//   cache:     bf16 rows of kv_lora_rank + rope_dim ([c_kv | k_pe]); sequence b's rows are
//              cache[row_start[b] .. row_start[b] + length[b]).
//   row_start: int64 [batch], length: int32 [batch], both in device memory.
//   workspace: MlaDecodeWorkspaceBytes(shape, batch, max_length, variant) bytes of device memory.
//   out:       f32 [batch x num_heads x kv_lora_rank].
// REQUIRES (checked, InvalidArgument naming the field): num_heads >= 1; kv_lora_rank and rope_dim
// multiples of 8 with 8 <= kv_lora_rank <= 512, rope_dim >= 0 and their sum <= 576 (the shared
// memory tiles are sized for DeepSeek-V2's 512 + 64); 1 <= batch <= 65535; max_length >= 1;
// softmax_scale finite; pointers not null; q, cache and workspace 16-byte aligned.
// REQUIRES (device data, not checked): 1 <= length[b] <= max_length; the rows lie in the cache.
// `workspace` must be sized for the same variant. The split kernel takes up to 165,888 B of
// shared memory (sm_80 allows 166,912, sm_90 232,448); a GPU that allows less gets Internal.
// Launches asynchronously on `stream`; returns the launch error, if any.
Status MlaDecode(const MlaDecodeShape& shape, const uint16_t* q, const uint16_t* cache,
                 const int64_t* row_start, const int32_t* length, int32_t batch, int32_t max_length,
                 void* workspace, float* out, Stream stream,
                 MlaDecodeVariant variant = MlaDecodeVariant::kTensorCoreV2);

// The same function on CUDA cores in f32 throughout (one block per sequence and head, online
// softmax), with no workspace: slow (every head re-reads its sequence's rows) but exact to f32 —
// the cross-check for MlaDecode on the device. REQUIRES as MlaDecode, except that any
// 1 <= kv_lora_rank <= 1024 and 0 <= rope_dim <= 1024 is accepted, q and cache need only bf16
// alignment, and max_length is not needed.
Status MlaDecodeF32(const MlaDecodeShape& shape, const uint16_t* q, const uint16_t* cache,
                    const int64_t* row_start, const int32_t* length, int32_t batch, float* out,
                    Stream stream);

}  // namespace kubemoe::cuda
