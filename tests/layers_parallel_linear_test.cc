// ParallelLinear and ParallelSwiGluFfn: right against a float64 reference on both sides of
// kGemmMinRows (streaming kernels below it, sgemm panels from it), and bit-for-bit the same
// whatever the pool's size.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/weight_gemm.h"
#include "layers/parallel_linear.h"

namespace kubemoe::layers {
namespace {

constexpr int64_t kHidden = 64, kInter = 96;

LinearWeight Weight(int64_t rows, int64_t cols, float phase) {
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < w.size(); ++i)
    w[i] = 0.1f * std::sin(phase + 0.29f * static_cast<float>(i));
  return LinearWeight::FromF32(std::move(w), rows, cols);
}

std::vector<float> Input(int64_t m, int64_t cols) {
  std::vector<float> x(static_cast<size_t>(m * cols));
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(0.13f * static_cast<float>(i));
  return x;
}

// y = x W^T in double.
std::vector<double> Reference(const std::vector<double>& x, int64_t m, const LinearWeight& w) {
  const std::vector<float> wf = w.ToF32();
  std::vector<double> y(static_cast<size_t>(m * w.rows()));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t n = 0; n < w.rows(); ++n) {
      double s = 0;
      for (int64_t k = 0; k < w.cols(); ++k)
        s += x[static_cast<size_t>(i * w.cols() + k)] * wf[static_cast<size_t>(n * w.cols() + k)];
      y[static_cast<size_t>(i * w.rows() + n)] = s;
    }
  return y;
}

double MaxRelative(const std::vector<float>& got, const std::vector<double>& want) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff = std::max(diff, std::fabs(got[i] - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  return diff / scale;
}

TEST(ParallelLinear, MatchesTheReferenceAndIgnoresThePoolSize) {
  cpu::SetBlasThreads(1);
  const LinearWeight w = Weight(200, kHidden, 0.5f);
  for (int64_t m : {int64_t{1}, int64_t{3}, kGemmMinRows - 1, kGemmMinRows, int64_t{40}}) {
    const std::vector<float> x = Input(m, kHidden);
    const std::vector<double> want = Reference({x.begin(), x.end()}, m, w);
    std::vector<float> first;
    for (int threads : {1, 2, 3, 4}) {
      ThreadPool pool(threads);
      std::vector<float> y(static_cast<size_t>(m * w.rows()));
      ParallelLinear(pool, x.data(), m, w, y.data());
      EXPECT_LE(MaxRelative(y, want), 1e-5) << "m " << m << " threads " << threads;
      if (first.empty()) first = y;
      EXPECT_EQ(y, first) << "m " << m << ": " << threads << " threads differ from 1";
    }
  }
}

TEST(ParallelSwiGluFfn, MatchesTheReferenceAndIgnoresThePoolSize) {
  cpu::SetBlasThreads(1);
  FfnWeights f;
  f.inter = kInter;
  f.gate_proj = Weight(kInter, kHidden, 0.1f);
  f.up_proj = Weight(kInter, kHidden, 0.7f);
  f.down_proj = Weight(kHidden, kInter, 1.3f);
  for (int64_t m : {1, 5, 20}) {
    const std::vector<float> x = Input(m, kHidden);
    const std::vector<double> xd(x.begin(), x.end());
    const std::vector<double> g = Reference(xd, m, f.gate_proj), u = Reference(xd, m, f.up_proj);
    std::vector<double> h(g.size());
    for (size_t i = 0; i < h.size(); ++i) h[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
    const std::vector<double> want = Reference(h, m, f.down_proj);
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      std::vector<float> out(static_cast<size_t>(m * kHidden));
      ParallelSwiGluFfn(pool, x.data(), m, f, out.data());
      EXPECT_LE(MaxRelative(out, want), 1e-5) << "m " << m << " threads " << threads;
      if (first.empty()) first = out;
      EXPECT_EQ(out, first) << "m " << m << ": " << threads << " threads differ from 1";
    }
  }
}

}  // namespace
}  // namespace kubemoe::layers
