// Weight-streaming products for CPU decode: y = x * W^T with W read as stored (f32, f16 or bf16
// from the checkpoint, or Q8_0), x and y f32, f32 accumulation. Made for small M (1..32 tokens),
// where the time is the pass over W's bytes, so each weight row is read from memory once per call
// and reused from cache for every row of x.
//
// Threads: the kernels start none. Each call covers output columns [n_begin, n_end) (rows of
// W), so a pool splits [0, N) into disjoint ranges, one per thread; calls on disjoint ranges may
// run concurrently (they write disjoint elements of y). Ranges starting at multiples of 16 keep
// threads off each other's cache lines of y. The functions are otherwise pure (no global state
// but the cached CPU-feature probe, which is thread-safe).
//
// Paths: the widest vector path the CPU supports is picked at run time (AVX-512F, else
// AVX2+FMA+F16C, else portable scalar code); tests force each path through the `path` argument.
// AVX-512 BF16 (vdpbf16ps) and AMX are not used: both round x to bf16, which breaks the f32
// accuracy contract below; they are candidates for an opt-in lower-precision mode.
//
// Formats: every function takes every WeightFormat on every path. Each weight is widened to f32
// exactly (f16 subnormals included; f16 via F16C on the vector paths, the same values as
// convert.h's F16ToF32) before it is multiplied; Q8_0 weights are quants[i] * scale in f32.
// WeightRowsToF32 gives those f32 values.
//
// Accuracy: every path accumulates in f32, in at least 8 independent partial sums; the result
// is within 1e-5 x sum_k |x[k] w[k]| of the exact product of the stored weights (asserted by
// the tests, whose worst case at K <= 2048 is ~2e-7).
#pragma once

#include <cstdint>

#include "kernels/cpu/weight_matrix.h"

namespace kubemoe::cpu {

enum class CpuPath { kAuto, kScalar, kAvx2, kAvx512 };

// Whether this CPU (and build) can run `path`; kAuto and kScalar always can.
bool CpuPathSupported(CpuPath path);
// The path kAuto resolves to on this CPU (probed once).
CpuPath BestCpuPath();
// "auto", "scalar", "avx2", "avx512".
const char* CpuPathName(CpuPath path);

// y[m x N] (row stride ldy >= n_end) gets y[i, n] = sum_k x[i, k] * W[n, k] for i < m and
// n_begin <= n < n_end; other elements of y are untouched. x is [m x K], row stride ldx >= K
// (K = w.cols). REQUIRES: 0 <= n_begin <= n_end <= w.rows; y overlaps neither x nor W; path is
// supported (else the process aborts with a message).
void WeightMatmul(const float* x, int64_t ldx, int64_t m, const WeightMatrix& w, float* y,
                  int64_t ldy, int64_t n_begin, int64_t n_end, CpuPath path = CpuPath::kAuto);

// The fused first half of a SwiGLU expert: h[i, n] = silu(x Wg^T)[i, n] * (x Wu^T)[i, n] for
// n in [n_begin, n_end), reading the rows of gate and up interleaved in one pass (so the x tile
// in registers serves both). gate and up must have the same shape [I x K] and format; h is
// [m x I] with row stride ldh. silu(g) = g / (1 + exp(-g)). Same REQUIRES as WeightMatmul.
void WeightSwiGluGateUp(const float* x, int64_t ldx, int64_t m, const WeightMatrix& gate,
                        const WeightMatrix& up, float* h, int64_t ldh, int64_t n_begin,
                        int64_t n_end, CpuPath path = CpuPath::kAuto);

// A whole SwiGLU expert on one thread: out[m x H] = (silu(x Wg^T) * (x Wu^T)) Wd^T, with
// gate/up [I x H] and down [H x I]. scratch holds m * I floats. A thread pool instead runs
// WeightSwiGluGateUp over ranges of [0, I), a barrier, then WeightMatmul over ranges of [0, H).
void WeightSwiGluExpert(const float* x, int64_t m, const WeightMatrix& gate, const WeightMatrix& up,
                        const WeightMatrix& down, float* scratch, float* out,
                        CpuPath path = CpuPath::kAuto);

// out[(row_end - row_begin) x K] (contiguous, row stride K) = rows [row_begin, row_end) of w as
// the f32 values the products above multiply by: f32 copied, bf16 and f16 widened exactly, Q8_0
// quants[i] * scale. For large M, where a panel of converted rows fed to an sgemm beats
// streaming. REQUIRES: 0 <= row_begin <= row_end <= w.rows; out does not overlap w. The vector
// paths use AVX2+F16C (also when kAvx512 is asked for).
void WeightRowsToF32(const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* out,
                     CpuPath path = CpuPath::kAuto);

}  // namespace kubemoe::cpu
