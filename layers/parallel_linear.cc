#include "layers/parallel_linear.h"

#include <vector>

#include "kernels/cpu/swiglu.h"
#include "kernels/cpu/weight_gemm.h"
#include "kernels/cpu/weight_matmul.h"

namespace kubemoe::layers {
namespace {

// Output-column ranges start at multiples of this, so threads do not share cache lines of y.
constexpr int64_t kRangeAlign = 16;
// Ranges per thread: a few, so a thread slowed by the machine's other work is caught up.
constexpr int kRangesPerThread = 4;

// Per-thread panel for WeightGemm, grown as needed.
float* GemmScratch(int64_t cols) {
  thread_local std::vector<float> scratch;
  const auto need = static_cast<size_t>(cpu::WeightGemmScratchFloats(cols));
  if (scratch.size() < need) scratch.resize(need);
  return scratch.data();
}

}  // namespace

void ParallelLinear(ThreadPool& pool, const float* x, int64_t ldx, int64_t m,
                    const cpu::WeightMatrix& w, float* y, int64_t ldy) {
  if (m <= 0 || w.rows == 0) return;
  if (m >= kGemmMinRows) {
    pool.ParallelRanges(
        w.rows, cpu::kWeightGemmPanelRows,
        [&](int64_t b, int64_t e) {
          cpu::WeightGemm(x, ldx, m, w, y, ldy, b, e, GemmScratch(w.cols));
        },
        kRangesPerThread);
    return;
  }
  pool.ParallelRanges(
      w.rows, kRangeAlign,
      [&](int64_t b, int64_t e) { cpu::WeightMatmul(x, ldx, m, w, y, ldy, b, e); },
      kRangesPerThread);
}

void ParallelSwiGluFfn(ThreadPool& pool, const float* x, int64_t m, const FfnWeights& f,
                       float* out) {
  if (m <= 0) return;
  const int64_t inter = f.inter;
  const int64_t hidden = f.gate_proj.cols();
  std::vector<float> h(static_cast<size_t>(m * inter));
  if (m >= kGemmMinRows) {
    std::vector<float> up(h.size());
    ParallelLinear(pool, x, hidden, m, f.gate_proj.matrix(), h.data(), inter);
    ParallelLinear(pool, x, hidden, m, f.up_proj.matrix(), up.data(), inter);
    cpu::SiluMulInPlace(h.data(), up.data(), m * inter);
  } else {
    pool.ParallelRanges(
        inter, kRangeAlign,
        [&](int64_t b, int64_t e) {
          cpu::WeightSwiGluGateUp(x, hidden, m, f.gate_proj.matrix(), f.up_proj.matrix(), h.data(),
                                  inter, b, e);
        },
        kRangesPerThread);
  }
  ParallelLinear(pool, h.data(), inter, m, f.down_proj.matrix(), out, hidden);
}

}  // namespace kubemoe::layers
