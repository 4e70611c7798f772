// Tests for kernels/cpu/weight_matmul (and q8_0): every dispatch path this CPU supports, forced
// in turn, against a float64 reference computed from the weights as stored (f32 as is, bf16 and
// f16 widened exactly, the f16 widening computed here independently of convert.h, Q8_0
// dequantized). Every format runs through every function. Paths the CPU lacks are skipped, with
// a message saying so.
//
// Bound: f32 accumulation in >= 8 partial sums of at most ~K/8 terms each errs by about
// sqrt(K/8) x 6e-8 of the sum of |x[k] w[k]| (the L1 norm of the products); the tests assert
// 1e-5 of it, which also holds for the worst-case growth at the K used here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/q8_0.h"
#include "kernels/cpu/weight_matmul.h"
#include "model/dtype.h"

namespace kubemoe {
namespace {

using cpu::CpuPath;
using cpu::WeightFormat;
using cpu::WeightMatrix;

constexpr double kRelL1 = 1e-5;
double g_worst_rel = 0;  // largest |error| / L1 seen by CheckMatmul since the test began
const int kMs[] = {1, 3, 8, 32};

std::vector<float> Normal(size_t n, uint32_t seed, float sd = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (float& f : v) f = d(rng);
  return v;
}

std::vector<uint16_t> ToBf16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = FloatToBf16(v[i]);
  return out;
}

// The weights the kernels see, widened to f32 exactly.
std::vector<float> Widen(const std::vector<uint16_t>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = Bf16ToFloat(v[i]);
  return out;
}

// IEEE half bits -> value, from the definition (not convert.h's code): subnormals are
// mantissa x 2^-24, normals (1024 + mantissa) x 2^(exponent - 25). No inf/NaN here.
float F16Exact(uint16_t h) {
  const int exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  const double v = exponent == 0 ? std::ldexp(static_cast<double>(mantissa), -24)
                                 : std::ldexp(static_cast<double>(1024 + mantissa), exponent - 25);
  return static_cast<float>((h & 0x8000) != 0 ? -v : v);  // exact: f16 values fit in f32
}

// f16 weights: mostly N(0, sd) rounded to f16, and every 4th a random finite bit pattern (any
// exponent but 31, so large values and subnormals too), every 4th + 2 a random subnormal.
std::vector<uint16_t> RandomF16(size_t n, uint32_t seed, float sd) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<uint16_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    const uint16_t bits = static_cast<uint16_t>(rng());
    if (i % 4 == 0) {
      out[i] = ((bits >> 10) & 0x1f) == 0x1f ? static_cast<uint16_t>(bits & 0xbfff) : bits;
    } else if (i % 4 == 2) {
      out[i] = static_cast<uint16_t>(bits & 0x83ff);  // exponent 0: subnormal (or zero)
    } else {
      out[i] = FloatToF16(d(rng));
    }
  }
  return out;
}

// Weights of any format with their reference f32 values (owning the bytes; views stay valid
// when a Weights is moved, since vectors keep their buffers).
struct Weights {
  WeightMatrix w;
  std::vector<float> ref;  // [rows x cols], the exact values the kernels must multiply by
  std::vector<uint16_t> u16;
  std::vector<float> f32;
  cpu::Q8_0Matrix q;
};

const WeightFormat kFormats[] = {WeightFormat::kBf16, WeightFormat::kF16, WeightFormat::kF32,
                                 WeightFormat::kQ8_0};

const char* FormatName(WeightFormat f) {
  switch (f) {
    case WeightFormat::kBf16:
      return "bf16";
    case WeightFormat::kF16:
      return "f16";
    case WeightFormat::kF32:
      return "f32";
    case WeightFormat::kQ8_0:
      return "q8_0";
  }
  return "?";
}

Weights MakeWeights(WeightFormat format, int64_t rows, int64_t cols, uint32_t seed,
                    float sd = 0.05f) {
  Weights out;
  const size_t n = static_cast<size_t>(rows * cols);
  switch (format) {
    case WeightFormat::kBf16:
      out.u16 = ToBf16(Normal(n, seed, sd));
      out.ref = Widen(out.u16);
      out.w = WeightMatrix::Bf16(out.u16.data(), rows, cols);
      break;
    case WeightFormat::kF16:
      out.u16 = RandomF16(n, seed, sd);
      out.ref.resize(n);
      for (size_t i = 0; i < n; ++i) out.ref[i] = F16Exact(out.u16[i]);
      out.w = WeightMatrix::F16(out.u16.data(), rows, cols);
      break;
    case WeightFormat::kF32:
      out.f32 = Normal(n, seed, sd);
      out.ref = out.f32;
      out.w = WeightMatrix::F32(out.f32.data(), rows, cols);
      break;
    case WeightFormat::kQ8_0: {
      const std::vector<float> raw = Normal(n, seed, sd);
      auto q = cpu::QuantizeQ8_0(raw.data(), rows, cols);
      EXPECT_TRUE(q.ok()) << q.status().message();
      out.q = std::move(*q);
      out.ref.resize(n);
      cpu::DequantizeQ8_0(out.q, out.ref.data());
      out.w = out.q.View();
      break;
    }
  }
  return out;
}

struct Ref {
  double value;
  double l1;  // sum of |products|
};

Ref Dot(const float* x, const float* w, int64_t k) {
  Ref r{0.0, 0.0};
  for (int64_t c = 0; c < k; ++c) {
    const double p = static_cast<double>(x[c]) * static_cast<double>(w[c]);
    r.value += p;
    r.l1 += std::fabs(p);
  }
  return r;
}

double SiluD(double g) { return g / (1.0 + std::exp(-g)); }

class WeightMatmulPathTest : public ::testing::TestWithParam<CpuPath> {
 protected:
  void SetUp() override {
    if (!cpu::CpuPathSupported(GetParam())) {
      GTEST_SKIP() << "this CPU cannot run the " << cpu::CpuPathName(GetParam()) << " path";
    }
  }
};

// Runs y = x W^T on the path under test and checks every element against the f64 reference,
// and that columns outside [n_begin, n_end) and the padding of y stay untouched.
void CheckMatmul(CpuPath path, const WeightMatrix& w, const std::vector<float>& w_f32, int64_t m,
                 int64_t n_begin, int64_t n_end, uint32_t seed) {
  const int64_t k = w.cols, n = w.rows;
  const int64_t ldx = k + 3, ldy = n + 5;  // padded strides, so stride bugs show
  const std::vector<float> x = Normal(static_cast<size_t>(m * ldx), seed);
  const float sentinel = -12345.0f;
  std::vector<float> y(static_cast<size_t>(m * ldy), sentinel);
  cpu::WeightMatmul(x.data(), ldx, m, w, y.data(), ldy, n_begin, n_end, path);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < ldy; ++j) {
      const float got = y[static_cast<size_t>(i * ldy + j)];
      if (j < n_begin || j >= n_end) {
        ASSERT_EQ(got, sentinel) << "wrote outside the range at (" << i << ", " << j << ")";
        continue;
      }
      const Ref r = Dot(x.data() + i * ldx, w_f32.data() + j * k, k);
      if (r.l1 > 0) g_worst_rel = std::max(g_worst_rel, std::fabs(got - r.value) / r.l1);
      ASSERT_NEAR(got, r.value, kRelL1 * r.l1 + 1e-30)
          << cpu::CpuPathName(path) << " m=" << m << " n=" << n << " k=" << k << " at (" << i
          << ", " << j << ")";
    }
  }
}

TEST_P(WeightMatmulPathTest, Bf16MatchesF64Reference) {
  // K not a multiple of 8, 16 or 32 included, and N not a multiple of the 4-row tile.
  const int64_t ks[] = {1, 7, 8, 15, 17, 31, 33, 100, 257, 1013, 2048};
  const int64_t ns[] = {1, 3, 4, 6, 17, 64};
  uint32_t seed = 1;
  g_worst_rel = 0;
  for (int64_t k : ks) {
    for (int64_t n : ns) {
      const std::vector<uint16_t> wb = ToBf16(Normal(static_cast<size_t>(n * k), seed++, 0.05f));
      const std::vector<float> wf = Widen(wb);
      const WeightMatrix w = WeightMatrix::Bf16(wb.data(), n, k);
      for (int m : kMs) CheckMatmul(GetParam(), w, wf, m, 0, n, seed++);
    }
  }
  std::printf("%s bf16: worst |error| / L1 = %.3g (bound %.0e)\n", cpu::CpuPathName(GetParam()),
              g_worst_rel, kRelL1);
}

TEST_P(WeightMatmulPathTest, Q8_0MatchesDequantizedReference) {
  const int64_t ks[] = {32, 64, 96, 160, 2048};
  const int64_t ns[] = {1, 5, 8, 19};
  uint32_t seed = 100;
  g_worst_rel = 0;
  for (int64_t k : ks) {
    for (int64_t n : ns) {
      const std::vector<float> raw = Normal(static_cast<size_t>(n * k), seed++, 0.05f);
      auto q = cpu::QuantizeQ8_0(raw.data(), n, k);
      ASSERT_TRUE(q.ok()) << q.status().message();
      std::vector<float> deq(raw.size());
      cpu::DequantizeQ8_0(*q, deq.data());
      for (int m : kMs) CheckMatmul(GetParam(), q->View(), deq, m, 0, n, seed++);
    }
  }
  std::printf("%s Q8_0: worst |error| / L1 = %.3g (bound %.0e)\n", cpu::CpuPathName(GetParam()),
              g_worst_rel, kRelL1);
}

// A thread pool gives each thread a range of rows; the ranges must compose to the whole product
// exactly (bitwise: each output's arithmetic does not depend on how rows were grouped).
TEST_P(WeightMatmulPathTest, RowRangesComposeToTheWholeProduct) {
  const int64_t n = 37, k = 96, m = 8;
  const std::vector<uint16_t> wb = ToBf16(Normal(n * k, 7, 0.05f));
  const std::vector<float> wf = Widen(wb);
  auto q = cpu::QuantizeQ8_0(wf.data(), n, k);
  ASSERT_TRUE(q.ok());
  const WeightMatrix ws[] = {WeightMatrix::Bf16(wb.data(), n, k), q->View()};
  const std::vector<float> x = Normal(m * k, 8);
  for (const WeightMatrix& w : ws) {
    std::vector<float> whole(m * n), parts(m * n);
    cpu::WeightMatmul(x.data(), k, m, w, whole.data(), n, 0, n, GetParam());
    const int64_t cuts[] = {0, 1, 6, 16, 33, 37};
    for (size_t c = 0; c + 1 < std::size(cuts); ++c) {
      cpu::WeightMatmul(x.data(), k, m, w, parts.data(), n, cuts[c], cuts[c + 1], GetParam());
    }
    EXPECT_EQ(whole, parts);
    // A sub-range on its own is checked against the reference too (sentinels around it).
    if (w.format == cpu::WeightFormat::kBf16) CheckMatmul(GetParam(), w, wf, 3, 5, 22, 9);
  }
}

// Reference for h = silu(x Wg^T) * (x Wu^T) and the bound its f32 evaluation must meet: the
// errors of g and u (kRelL1 of their L1 norms) carried through silu(g) * u, |silu'| <= 1.1,
// plus f32 rounding of exp and the products.
struct GateUpRef {
  double value;
  double tol;
};

GateUpRef GateUpReference(const float* x, const float* wg, const float* wu, int64_t k) {
  const Ref g = Dot(x, wg, k), u = Dot(x, wu, k);
  const double v = SiluD(g.value) * u.value;
  const double tol = kRelL1 * (1.1 * g.l1 * std::fabs(u.value) + std::fabs(SiluD(g.value)) * u.l1) +
                     1e-6 * std::fabs(v) + 1e-30;
  return {v, tol};
}

TEST_P(WeightMatmulPathTest, FusedGateUpMatchesF64Reference) {
  const int64_t ks[] = {32, 64, 352, 2048};  // multiples of 32, so Q8_0 runs on the same shapes
  const int64_t inters[] = {1, 2, 5, 24};
  uint32_t seed = 200;
  for (int64_t k : ks) {
    for (int64_t inter : inters) {
      const std::vector<float> graw = Normal(inter * k, seed++, 0.05f);
      const std::vector<float> uraw = Normal(inter * k, seed++, 0.05f);
      const std::vector<uint16_t> gb = ToBf16(graw), ub = ToBf16(uraw);
      auto gq = cpu::QuantizeQ8_0(graw.data(), inter, k);
      auto uq = cpu::QuantizeQ8_0(uraw.data(), inter, k);
      ASSERT_TRUE(gq.ok() && uq.ok());
      std::vector<float> gq_f(graw.size()), uq_f(uraw.size());
      cpu::DequantizeQ8_0(*gq, gq_f.data());
      cpu::DequantizeQ8_0(*uq, uq_f.data());
      struct Case {
        WeightMatrix g, u;
        std::vector<float> gf, uf;
      };
      const Case cases[] = {{WeightMatrix::Bf16(gb.data(), inter, k),
                             WeightMatrix::Bf16(ub.data(), inter, k), Widen(gb), Widen(ub)},
                            {gq->View(), uq->View(), gq_f, uq_f}};
      for (const Case& c : cases) {
        for (int m : kMs) {
          const std::vector<float> x = Normal(m * k, seed++);
          std::vector<float> h(m * inter);
          cpu::WeightSwiGluGateUp(x.data(), k, m, c.g, c.u, h.data(), inter, 0, inter, GetParam());
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < inter; ++j) {
              const GateUpRef r =
                  GateUpReference(x.data() + i * k, c.gf.data() + j * k, c.uf.data() + j * k, k);
              ASSERT_NEAR(h[i * inter + j], r.value, r.tol)
                  << cpu::CpuPathName(GetParam()) << " k=" << k << " inter=" << inter << " m=" << m
                  << " at (" << i << ", " << j << ")";
            }
          }
        }
      }
    }
  }
}

void CheckExpert(CpuPath path, WeightFormat format) {
  const int64_t hidden = 64, inter = 96, m = 3;
  const Weights gw = MakeWeights(format, inter, hidden, 300);
  const Weights uw = MakeWeights(format, inter, hidden, 301);
  const Weights dw = MakeWeights(format, hidden, inter, 302);
  const std::vector<float> x = Normal(m * hidden, 303);
  std::vector<float> scratch(m * inter), out(m * hidden);
  cpu::WeightSwiGluExpert(x.data(), m, gw.w, uw.w, dw.w, scratch.data(), out.data(), path);

  // Against f64 end to end: h's own tolerance carried through the down product.
  const std::vector<float>&gf = gw.ref, &uf = uw.ref, &df = dw.ref;
  for (int64_t i = 0; i < m; ++i) {
    std::vector<double> h(inter), htol(inter);
    for (int64_t j = 0; j < inter; ++j) {
      const GateUpRef r = GateUpReference(x.data() + i * hidden, gf.data() + j * hidden,
                                          uf.data() + j * hidden, hidden);
      h[j] = r.value;
      htol[j] = r.tol;
    }
    for (int64_t o = 0; o < hidden; ++o) {
      double v = 0, l1 = 0, carried = 0;
      for (int64_t j = 0; j < inter; ++j) {
        const double wd = df[o * inter + j];
        v += h[j] * wd;
        l1 += std::fabs(h[j] * wd);
        carried += htol[j] * std::fabs(wd);
      }
      ASSERT_NEAR(out[i * hidden + o], v, kRelL1 * l1 + carried + 1e-30) << i << ", " << o;
    }
  }
}

TEST_P(WeightMatmulPathTest, ExpertIsGateUpThenDown) {
  for (WeightFormat format : kFormats) {
    SCOPED_TRACE(FormatName(format));
    CheckExpert(GetParam(), format);
    if (HasFatalFailure()) return;
  }
}

// Every format x M in {1, 3, 4, 8, 17} (the 1-, 2- and 4-row tiles of x and their remainders) x
// row ranges that start and end off the 4-row weight tile, K with and without a vector tail.
TEST_P(WeightMatmulPathTest, EveryFormatMatchesF64ReferenceOnRowRanges) {
  const int ms[] = {1, 3, 4, 8, 17};
  const int64_t n = 37;
  const int64_t ranges[][2] = {{0, 37}, {0, 1}, {1, 6}, {5, 22}, {33, 37}, {36, 37}, {9, 9}};
  uint32_t seed = 500;
  for (WeightFormat format : kFormats) {
    const std::vector<int64_t> ks = format == WeightFormat::kQ8_0
                                        ? std::vector<int64_t>{32, 96, 256}
                                        : std::vector<int64_t>{1, 7, 33, 100, 257};
    g_worst_rel = 0;
    for (int64_t k : ks) {
      const Weights w = MakeWeights(format, n, k, seed++);
      for (const auto& range : ranges) {
        for (int m : ms) {
          SCOPED_TRACE(std::string(FormatName(format)) + " k=" + std::to_string(k) +
                       " m=" + std::to_string(m) + " rows [" + std::to_string(range[0]) + ", " +
                       std::to_string(range[1]) + ")");
          CheckMatmul(GetParam(), w.w, w.ref, m, range[0], range[1], seed++);
          if (HasFatalFailure()) return;
        }
      }
    }
    std::printf("%s %s (row ranges): worst |error| / L1 = %.3g (bound %.0e)\n",
                cpu::CpuPathName(GetParam()), FormatName(format), g_worst_rel, kRelL1);
  }
}

// f16 subnormals alone: a kernel that flushed them to zero (or read them as bf16) would be off
// by the whole result, far beyond the bound.
TEST_P(WeightMatmulPathTest, F16SubnormalWeights) {
  const int64_t n = 9, k = 75;
  std::vector<uint16_t> bits(n * k);
  std::mt19937 rng(600);
  for (uint16_t& b : bits) b = static_cast<uint16_t>((rng() & 0x83ff) | 1);  // nonzero subnormal
  std::vector<float> ref(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) ref[i] = F16Exact(bits[i]);
  EXPECT_LT(std::fabs(ref[0]), 6.2e-5f);  // below the smallest normal half, 2^-14
  for (int m : {1, 4, 5}) {
    CheckMatmul(GetParam(), WeightMatrix::F16(bits.data(), n, k), ref, m, 0, n, 601 + m);
  }
}

// The same bits as f16 and as bf16 are different matrices; each view must be read as its own.
TEST_P(WeightMatmulPathTest, F16IsNotReadAsBf16) {
  const int64_t n = 8, k = 64, m = 2;
  std::vector<uint16_t> bits(n * k);
  for (size_t i = 0; i < bits.size(); ++i) bits[i] = FloatToF16(0.01f * static_cast<float>(i % 13));
  std::vector<float> as_f16(bits.size()), as_bf16(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) {
    as_f16[i] = F16Exact(bits[i]);
    as_bf16[i] = Bf16ToFloat(bits[i]);
  }
  const std::vector<float> x = Normal(m * k, 602);
  std::vector<float> y16(m * n), ybf(m * n);
  cpu::WeightMatmul(x.data(), k, m, WeightMatrix::F16(bits.data(), n, k), y16.data(), n, 0, n,
                    GetParam());
  cpu::WeightMatmul(x.data(), k, m, WeightMatrix::Bf16(bits.data(), n, k), ybf.data(), n, 0, n,
                    GetParam());
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const Ref r16 = Dot(x.data() + i * k, as_f16.data() + j * k, k);
      const Ref rbf = Dot(x.data() + i * k, as_bf16.data() + j * k, k);
      ASSERT_NEAR(y16[i * n + j], r16.value, kRelL1 * r16.l1 + 1e-30) << i << ", " << j;
      ASSERT_NEAR(ybf[i * n + j], rbf.value, kRelL1 * rbf.l1 + 1e-30) << i << ", " << j;
      if (r16.l1 > 0) {
        EXPECT_NE(y16[i * n + j], ybf[i * n + j]) << i << ", " << j;
      }
    }
  }
}

// The fused gate-up for every format, M and row range, sentinels around the written range.
TEST_P(WeightMatmulPathTest, EveryFormatFusedGateUpOnRowRanges) {
  const int ms[] = {1, 3, 4, 8, 17};
  const int64_t inter = 13;
  const int64_t ranges[][2] = {{0, 13}, {1, 6}, {5, 12}, {12, 13}};
  uint32_t seed = 700;
  for (WeightFormat format : kFormats) {
    const std::vector<int64_t> ks = format == WeightFormat::kQ8_0 ? std::vector<int64_t>{32, 160}
                                                                  : std::vector<int64_t>{9, 100};
    for (int64_t k : ks) {
      const Weights g = MakeWeights(format, inter, k, seed++);
      const Weights u = MakeWeights(format, inter, k, seed++);
      for (const auto& range : ranges) {
        for (int m : ms) {
          const int64_t ldx = k + 1, ldh = inter + 2;
          const std::vector<float> x = Normal(m * ldx, seed++);
          const float sentinel = -777.0f;
          std::vector<float> h(m * ldh, sentinel);
          cpu::WeightSwiGluGateUp(x.data(), ldx, m, g.w, u.w, h.data(), ldh, range[0], range[1],
                                  GetParam());
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < ldh; ++j) {
              const float got = h[i * ldh + j];
              if (j < range[0] || j >= range[1]) {
                ASSERT_EQ(got, sentinel) << "wrote outside the range at (" << i << ", " << j << ")";
                continue;
              }
              const GateUpRef r = GateUpReference(x.data() + i * ldx, g.ref.data() + j * k,
                                                  u.ref.data() + j * k, k);
              ASSERT_NEAR(got, r.value, r.tol) << FormatName(format) << " k=" << k << " m=" << m
                                               << " at (" << i << ", " << j << ")";
            }
          }
        }
      }
    }
  }
}

// WeightRowsToF32 gives exactly the values convert.h / DequantizeQ8_0 give (and, for f16, the
// values of the definition), for any row range; nothing past the range is written.
TEST_P(WeightMatmulPathTest, RowsToF32MatchesTheConversions) {
  const int64_t n = 11;
  const int64_t ranges[][2] = {{0, 11}, {0, 1}, {3, 10}, {10, 11}, {4, 4}};
  uint32_t seed = 800;
  for (WeightFormat format : kFormats) {
    for (int64_t k : {32, 96, 200}) {
      if (format == WeightFormat::kQ8_0 && k % 32 != 0) continue;
      const Weights w = MakeWeights(format, n, k, seed++);
      // The conversion under test's twin, over the whole matrix.
      std::vector<float> want(n * k);
      switch (format) {
        case WeightFormat::kBf16:
          cpu::Bf16ToF32(w.u16.data(), want.data(), want.size());
          break;
        case WeightFormat::kF16:
          cpu::F16ToF32(w.u16.data(), want.data(), want.size());
          EXPECT_EQ(want, w.ref);  // convert.h agrees with the definition
          break;
        case WeightFormat::kF32:
          want = w.f32;
          break;
        case WeightFormat::kQ8_0:
          cpu::DequantizeQ8_0(w.q, want.data());
          break;
      }
      for (const auto& range : ranges) {
        const int64_t count = (range[1] - range[0]) * k;
        std::vector<float> out(count + 7, -1.5f);
        cpu::WeightRowsToF32(w.w, range[0], range[1], out.data(), GetParam());
        for (int64_t i = 0; i < count; ++i) {
          ASSERT_EQ(out[i], want[range[0] * k + i])
              << FormatName(format) << " k=" << k << " rows [" << range[0] << ", " << range[1]
              << ") element " << i;
        }
        for (int64_t i = count; i < count + 7; ++i)
          ASSERT_EQ(out[i], -1.5f) << "wrote past the end";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, WeightMatmulPathTest,
                         ::testing::Values(CpuPath::kScalar, CpuPath::kAvx2, CpuPath::kAvx512,
                                           CpuPath::kAuto),
                         [](const ::testing::TestParamInfo<CpuPath>& param) {
                           return std::string(cpu::CpuPathName(param.param));
                         });

TEST(WeightMatmulTest, ReportsTheCpuPath) {
  const CpuPath best = cpu::BestCpuPath();
  EXPECT_NE(best, CpuPath::kAuto);
  EXPECT_TRUE(cpu::CpuPathSupported(best));
  std::printf("CPU path chosen at run time: %s (avx2 %s, avx512 %s)\n", cpu::CpuPathName(best),
              cpu::CpuPathSupported(CpuPath::kAvx2) ? "yes" : "no",
              cpu::CpuPathSupported(CpuPath::kAvx512) ? "yes" : "no");
}

// Round trip: each weight within half a step, scale/2 = max|w over its block| / 254 (plus f32
// rounding); the bound documented in q8_0.h.
TEST(Q8_0Test, RoundTripIsWithinHalfAStep) {
  const int64_t rows = 64, cols = 256;
  std::vector<float> w = Normal(rows * cols, 400);
  for (int64_t c = 0; c < 32; ++c) w[c] = 0.0f;  // an all-zero block comes back exactly
  w[40] = 1000.0f;                               // an outlier dominates only its own block
  auto q = cpu::QuantizeQ8_0(w.data(), rows, cols);
  ASSERT_TRUE(q.ok());
  std::vector<float> back(w.size());
  cpu::DequantizeQ8_0(*q, back.data());
  double worst_rel = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < cols / 32; ++b) {
      float amax = 0;
      for (int64_t c = 0; c < 32; ++c) amax = std::max(amax, std::fabs(w[r * cols + b * 32 + c]));
      for (int64_t c = 0; c < 32; ++c) {
        const size_t i = r * cols + b * 32 + c;
        const double err = std::fabs(static_cast<double>(w[i]) - back[i]);
        ASSERT_LE(err, amax / 254.0 * (1 + 1e-6)) << r << ", " << b << ", " << c;
        if (amax > 0) worst_rel = std::max(worst_rel, err / amax);
      }
    }
  }
  for (int64_t c = 0; c < 32; ++c) EXPECT_EQ(back[c], 0.0f);
  EXPECT_LE(worst_rel, 1.0 / 254 * (1 + 1e-6));
  std::printf("Q8_0 worst round-trip error: %.3g of the block's max |w| (bound 1/254 = %.3g)\n",
              worst_rel, 1.0 / 254);
}

TEST(Q8_0Test, Bf16InputMatchesItsWidenedF32) {
  const std::vector<uint16_t> wb = ToBf16(Normal(8 * 64, 401));
  const std::vector<float> wf = Widen(wb);
  auto a = cpu::QuantizeQ8_0Bf16(wb.data(), 8, 64);
  auto b = cpu::QuantizeQ8_0(wf.data(), 8, 64);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->quants, b->quants);
  EXPECT_EQ(a->scales, b->scales);
}

TEST(Q8_0Test, RejectsRowsThatAreNotWholeBlocks) {
  const std::vector<float> w(4 * 48, 1.0f);
  for (int64_t cols : {48, 0, 31, 33}) {
    auto q = cpu::QuantizeQ8_0(w.data(), 2, cols);
    ASSERT_FALSE(q.ok()) << cols;
    EXPECT_NE(q.status().message().find("multiple of 32"), std::string::npos)
        << q.status().message();
  }
  std::vector<float> bad(64, 0.0f);
  bad[5] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(cpu::QuantizeQ8_0(bad.data(), 1, 64).ok());
}

TEST(WeightMatrixTest, BytesPerFormat) {
  std::vector<uint16_t> h(6);
  std::vector<float> f(6);
  EXPECT_EQ(WeightMatrix::F32(f.data(), 2, 3).Bytes(), 24);
  EXPECT_EQ(WeightMatrix::F16(h.data(), 2, 3).Bytes(), 12);
  EXPECT_EQ(WeightMatrix::Bf16(h.data(), 2, 3).Bytes(), 12);
  const WeightMatrix w16 = WeightMatrix::F16(h.data(), 2, 3);
  EXPECT_EQ(w16.format, WeightFormat::kF16);
  EXPECT_EQ(w16.f16, h.data());
  EXPECT_EQ(w16.bf16, nullptr);
  const WeightMatrix w32 = WeightMatrix::F32(f.data(), 2, 3);
  EXPECT_EQ(w32.format, WeightFormat::kF32);
  EXPECT_EQ(w32.f32, f.data());
}

TEST(WeightMatmulDeathTest, WeightWithoutDataAborts) {
  std::vector<float> x(8), y(1), out(8);
  EXPECT_DEATH(
      cpu::WeightMatmul(x.data(), 8, 1, WeightMatrix::F16(nullptr, 1, 8), y.data(), 1, 0, 1),
      "f16 weight without data");
  EXPECT_DEATH(cpu::WeightRowsToF32(WeightMatrix::F32(nullptr, 1, 8), 0, 1, out.data()),
               "f32 weight without data");
  std::vector<float> w(8);
  EXPECT_DEATH(cpu::WeightRowsToF32(WeightMatrix::F32(w.data(), 1, 8), 0, 2, out.data()),
               "row_begin, row_end");
}

TEST(WeightMatmulDeathTest, Q8_0WeightWithPartialBlocksAborts) {
  std::vector<int8_t> q(48);
  std::vector<float> s(2);
  WeightMatrix w;
  w.format = cpu::WeightFormat::kQ8_0;
  w.rows = 1;
  w.cols = 48;
  w.quants = q.data();
  w.scales = s.data();
  std::vector<float> x(48), y(1);
  EXPECT_DEATH(cpu::WeightMatmul(x.data(), 48, 1, w, y.data(), 1, 0, 1), "cols % 32 == 0");
}

}  // namespace
}  // namespace kubemoe
