// Argument checks and run-time dispatch for weight_matmul.h; the products are in
// weight_matmul_{scalar,avx2,avx512}.cc.
#include "kernels/cpu/weight_matmul.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include <cstdio>
#include <cstdlib>

#include "kernels/cpu/weight_matmul_paths.h"

namespace kubemoe::cpu {
namespace {

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "kubemoe::cpu weight matmul: %s\n", what);
  std::abort();
}

#if defined(__x86_64__)
// F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports does not know "f16c".
// F16C works on the XMM/YMM state the "avx2" check already requires the OS to save.
bool HasF16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
}
#endif

CpuPath Probe() {
#if defined(__x86_64__)
  // __builtin_cpu_supports also checks that the OS saves the wider registers (XCR0).
  if (__builtin_cpu_supports("avx512f")) return CpuPath::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && HasF16c()) {
    return CpuPath::kAvx2;
  }
#endif
  return CpuPath::kScalar;
}

CpuPath Resolve(CpuPath path) {
  if (path == CpuPath::kAuto) return BestCpuPath();
  if (!CpuPathSupported(path)) Fail("the requested CPU path is not supported on this machine");
  return path;
}

void CheckWeight(const WeightMatrix& w) {
  if (w.rows < 0 || w.cols <= 0) Fail("weight shape must have rows >= 0 and cols > 0");
  if (w.format == WeightFormat::kBf16 && w.bf16 == nullptr) Fail("bf16 weight without data");
  if (w.format == WeightFormat::kF32 && w.f32 == nullptr) Fail("f32 weight without data");
  if (w.format == WeightFormat::kF16 && w.f16 == nullptr) Fail("f16 weight without data");
  if (w.format == WeightFormat::kQ8_0) {
    if (w.cols % kQ8_0Block != 0) Fail("Q8_0 weight needs cols % 32 == 0");
    if (w.quants == nullptr || w.scales == nullptr) Fail("Q8_0 weight without data");
  }
}

void CheckCommon(const paths::Product& p) {
  CheckWeight(*p.w);
  if (p.m < 0) Fail("m must be >= 0");
  if (p.ldx < p.w->cols) Fail("ldx must be >= K");
  if (p.n_begin < 0 || p.n_begin > p.n_end || p.n_end > p.w->rows) Fail("bad [n_begin, n_end)");
  if (p.ldy < p.n_end) Fail("ldy must be >= n_end");
}

}  // namespace

bool CpuPathSupported(CpuPath path) {
  switch (path) {
    case CpuPath::kAuto:
    case CpuPath::kScalar:
      return true;
    case CpuPath::kAvx2:
#if defined(__x86_64__)
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && HasF16c();
#else
      return false;
#endif
    case CpuPath::kAvx512:
#if defined(__x86_64__)
      return __builtin_cpu_supports("avx512f");
#else
      return false;
#endif
  }
  return false;
}

CpuPath BestCpuPath() {
  static const CpuPath best = Probe();  // thread-safe static initialization
  return best;
}

const char* CpuPathName(CpuPath path) {
  switch (path) {
    case CpuPath::kAuto:
      return "auto";
    case CpuPath::kScalar:
      return "scalar";
    case CpuPath::kAvx2:
      return "avx2";
    case CpuPath::kAvx512:
      return "avx512";
  }
  return "?";
}

void WeightMatmul(const float* x, int64_t ldx, int64_t m, const WeightMatrix& w, float* y,
                  int64_t ldy, int64_t n_begin, int64_t n_end, CpuPath path) {
  const paths::Product p{x, ldx, m, &w, nullptr, y, ldy, n_begin, n_end};
  CheckCommon(p);
  if (m == 0 || n_begin == n_end) return;
  switch (Resolve(path)) {
#if defined(__x86_64__)
    case CpuPath::kAvx512:
      return paths::MatmulAvx512(p);
    case CpuPath::kAvx2:
      return paths::MatmulAvx2(p);
#endif
    default:
      return paths::MatmulScalar(p);
  }
}

void WeightSwiGluGateUp(const float* x, int64_t ldx, int64_t m, const WeightMatrix& gate,
                        const WeightMatrix& up, float* h, int64_t ldh, int64_t n_begin,
                        int64_t n_end, CpuPath path) {
  const paths::Product p{x, ldx, m, &gate, &up, h, ldh, n_begin, n_end};
  CheckCommon(p);
  CheckWeight(up);
  if (up.format != gate.format || up.rows != gate.rows || up.cols != gate.cols) {
    Fail("gate and up weights must have the same format and shape");
  }
  if (m == 0 || n_begin == n_end) return;
  switch (Resolve(path)) {
#if defined(__x86_64__)
    case CpuPath::kAvx512:
      return paths::GateUpAvx512(p);
    case CpuPath::kAvx2:
      return paths::GateUpAvx2(p);
#endif
    default:
      return paths::GateUpScalar(p);
  }
}

void WeightSwiGluExpert(const float* x, int64_t m, const WeightMatrix& gate, const WeightMatrix& up,
                        const WeightMatrix& down, float* scratch, float* out, CpuPath path) {
  const int64_t hidden = gate.cols;
  const int64_t inter = gate.rows;
  if (down.rows != hidden || down.cols != inter) Fail("down must be [hidden x intermediate]");
  WeightSwiGluGateUp(x, hidden, m, gate, up, scratch, inter, 0, inter, path);
  WeightMatmul(scratch, inter, m, down, out, hidden, 0, hidden, path);
}

void WeightRowsToF32(const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* out,
                     CpuPath path) {
  CheckWeight(w);
  if (row_begin < 0 || row_begin > row_end || row_end > w.rows) Fail("bad [row_begin, row_end)");
  if (row_begin == row_end) return;
#if defined(__x86_64__)
  // AVX-512 CPUs have AVX2+FMA+F16C; one vector version is enough for a conversion.
  if (Resolve(path) != CpuPath::kScalar && CpuPathSupported(CpuPath::kAvx2)) {
    return paths::RowsToF32Avx2(w, row_begin, row_end, out);
  }
#else
  Resolve(path);
#endif
  paths::RowsToF32Scalar(w, row_begin, row_end, out);
}

}  // namespace kubemoe::cpu
