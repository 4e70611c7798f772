// Next-token sampling on device: the CUDA twin of cpu::SampleRows (kernels/cpu/sampling.h), with
// the same per-row settings and caller-drawn uniform u, so both pick the same tokens. Plain C++;
// the kernels are in sampling.cu.
//
// How: every row's logits are sorted at once (one CUB radix sort of (row, logit descending) keys
// carrying token ids; the sort is stable, so equal logits keep the lower id first, as the CPU's
// tie rule), then one block per row walks its sorted prefix in double: the softmax total of the
// top_k kept, the nucleus cut (first prefix whose mass reaches top_p), and the draw (first token
// whose cumulative probability exceeds u). Greedy rows take the first sorted token.
//
// Agreement with the CPU twin: both compute in double, in different summation orders, so they
// pick the same token unless u (or top_p) lies within rounding distance (about 1e-12 relative)
// of a cumulative probability. Probabilities of exactly 0 (logits more than ~745 temperatures
// below the maximum, or -inf) are ordered by logit here and by id on the CPU; they are never
// drawn, except as the fallback "last kept token" when u is at or above the rounded total.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "kernels/cpu/sampling.h"
#include "kernels/cuda/runtime.h"

namespace kubemoe::cuda {

using SamplingRow = cpu::SamplingRow;

// Bytes of device workspace SampleTokens needs for `rows` rows of `vocab` logits: two copies of
// 12 bytes per logit (sort keys and ids) plus CUB's scratch, about 24 * rows * vocab (630 MB at
// 256 x 102400). Queries the current device. InvalidArgument for sizes SampleTokens rejects.
StatusOr<size_t> SamplingWorkspaceBytes(int64_t rows, int64_t vocab);

// out_ids[r] = the token cpu::SampleToken picks for row r of `logits` (row stride ld) with
// settings params[r]. logits, params (rows entries), out_ids and workspace are device pointers;
// workspace must not overlap the others. The settings are read on the device, so the host checks
// none of them: any values behave as on the CPU twin. REQUIRES (as the twin): logits not NaN,
// each row with a finite maximum; temperatures not NaN.
// Returns InvalidArgument naming the field unless rows >= 0, 1 <= vocab, rows * vocab < 2^31,
// ld >= vocab, the pointers are not null and workspace_bytes >= SamplingWorkspaceBytes(rows,
// vocab); else the launch error. rows == 0 launches nothing. The work completes asynchronously
// on `stream`; the workspace is in use until then.
Status SampleTokens(const float* logits, int64_t ld, int64_t rows, int64_t vocab,
                    const SamplingRow* params, int32_t* out_ids, void* workspace,
                    size_t workspace_bytes, Stream stream);

// out_ids[r] = the greedy token of row r: its largest logit, the lowest id among equal ones (-0
// and +0 equal), as cpu::SampleToken with temperature <= 0. For batches whose rows are all
// greedy, which need neither SampleTokens' sort nor its workspace. logits and out_ids are device
// pointers. REQUIRES: logits not NaN.
// Returns InvalidArgument naming the field unless rows >= 0, 1 <= vocab < 2^31, ld >= vocab and
// the pointers are not null; else the launch error. rows == 0 launches nothing.
Status ArgmaxRows(const float* logits, int64_t ld, int64_t rows, int64_t vocab, int32_t* out_ids,
                  Stream stream);

}  // namespace kubemoe::cuda
