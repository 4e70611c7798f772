// Weight-streaming products (kernels/cpu/weight_matmul.h) at DeepSeek-V2-Lite shapes, as
// effective bandwidth: bytes of weight read per second, beside a STREAM-style read of a 512 MiB
// array on the same thread, so each kernel's fraction of the machine's read bandwidth comes
// from one run. Single-threaded (OpenBLAS too); the thread pool comes with the engine work.
// Weight formats: bf16, Q8_0, f16 and f32 through WeightMatmul, and the same f32 matrices
// through OpenBLAS sgemm for comparison.
//
// Each iteration multiplies by the next matrix of a pool of distinct copies that together hold
// >= 256 MiB (by default), larger than any last-level cache here, so weights come from DRAM as at
// decode. Counters: GB_s = weight GB/s (1e9); of_read_bw = GB_s / the best BM_StreamRead GB/s (with
// or without software prefetch; present when the stream benchmark ran first in the same process, as
// it does unless filtered out).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench/stream_read.h"
#include "kernels/cpu/weight_matmul.h"

namespace kubemoe {
namespace {

// KUBEMOE_BENCH_POOL_MB overrides the pool size; a pool that fits in cache (e.g. 1) shows the
// kernels' compute ceiling apart from DRAM.
int64_t PoolBytes() {
  const char* mb = std::getenv("KUBEMOE_BENCH_POOL_MB");
  return (mb != nullptr ? std::atoll(mb) : 256) << 20;
}
constexpr int64_t kStreamBytes = int64_t{512} << 20;

double g_read_gbs = 0;  // set by BM_StreamRead, read by the kernels' of_read_bw counter

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double Report(benchmark::State& state, double bytes_per_iter, double seconds, bool ratio = true) {
  const double gbs = bytes_per_iter * static_cast<double>(state.iterations()) / seconds / 1e9;
  state.counters["GB_s"] = gbs;
  if (ratio && g_read_gbs > 0) state.counters["of_read_bw"] = gbs / g_read_gbs;
  return gbs;
}

// Cheap deterministic filler (the values do not matter for speed, only that they are normal
// numbers): small bf16/f32 values and int8 in [-127, 127].
uint32_t Hash(uint64_t i) {
  uint64_t z = i * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  return static_cast<uint32_t>(z ^ (z >> 31));
}
float SmallFloat(uint64_t i) { return (static_cast<float>(Hash(i) & 0xffff) - 32768.0f) * 1e-6f; }

// --- STREAM-style read: sum of a 512 MiB f32 array ------------------------------------------

// Arg: software-prefetch distance in bytes (0 = none). The kernels prefetch, so the read they
// are compared with is the faster of the two variants (the largest GB/s seen so far).
void BM_StreamRead(benchmark::State& state) {
  const int64_t prefetch = state.range(0);
  const int64_t n = kStreamBytes / 4;
  std::vector<float> a(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) a[static_cast<size_t>(i)] = SmallFloat(static_cast<uint64_t>(i));
  double seconds = 0;
  for (auto _ : state) {
    const double t0 = Now();
    float s = bench::StreamSum(a.data(), n, prefetch);
    seconds += Now() - t0;
    benchmark::DoNotOptimize(s);
  }
  const double gbs = Report(state, static_cast<double>(kStreamBytes), seconds, /*ratio=*/false);
  if (gbs > g_read_gbs) g_read_gbs = gbs;
  state.SetLabel(bench::StreamSumLabel());
}

// --- Weight pools -----------------------------------------------------------------------------

// Distinct [n x k] matrices of one format, >= kPoolBytes in all, in one allocation.
struct Pool {
  std::vector<uint16_t> bf16;  // bf16 or f16 bits
  std::vector<int8_t> quants;
  std::vector<float> scales, f32;
  std::vector<cpu::WeightMatrix> views;
  int64_t count = 0;
  int64_t n = 0, k = 0;
};

enum class Kind { kBf16, kQ8_0, kF32, kF16 };

int64_t BytesPerMatrix(Kind kind, int64_t n, int64_t k) {
  switch (kind) {
    case Kind::kBf16:
    case Kind::kF16:
      return n * k * 2;
    case Kind::kQ8_0:
      return n * k + n * (k / cpu::kQ8_0Block) * 4;
    case Kind::kF32:
      return n * k * 4;
  }
  return 0;
}

Pool MakePool(Kind kind, int64_t n, int64_t k) {
  Pool p;
  p.n = n;
  p.k = k;
  const int64_t each = BytesPerMatrix(kind, n, k);
  p.count = std::max<int64_t>(2, (PoolBytes() + each - 1) / each);  // gate-up takes 2
  const int64_t elems = p.count * n * k;
  if (kind == Kind::kBf16) {
    p.bf16.resize(static_cast<size_t>(elems));
    for (int64_t i = 0; i < elems; ++i) {
      const float f = SmallFloat(static_cast<uint64_t>(i));
      uint32_t u;
      std::memcpy(&u, &f, sizeof u);
      p.bf16[static_cast<size_t>(i)] = static_cast<uint16_t>(u >> 16);
    }
    for (int64_t c = 0; c < p.count; ++c) {
      p.views.push_back(cpu::WeightMatrix::Bf16(p.bf16.data() + c * n * k, n, k));
    }
  } else if (kind == Kind::kF16) {
    // Normal halves of magnitude 2^-5 .. 1, random sign and mantissa.
    p.bf16.resize(static_cast<size_t>(elems));
    for (int64_t i = 0; i < elems; ++i) {
      const uint32_t h = Hash(static_cast<uint64_t>(i));
      p.bf16[static_cast<size_t>(i)] =
          static_cast<uint16_t>((h & 0x83ff) | ((10 + (h >> 16) % 5) << 10));
    }
    for (int64_t c = 0; c < p.count; ++c) {
      p.views.push_back(cpu::WeightMatrix::F16(p.bf16.data() + c * n * k, n, k));
    }
  } else if (kind == Kind::kQ8_0) {
    const int64_t blocks = n * (k / cpu::kQ8_0Block);
    p.quants.resize(static_cast<size_t>(elems));
    p.scales.resize(static_cast<size_t>(p.count * blocks));
    for (int64_t i = 0; i < elems; ++i) {
      p.quants[static_cast<size_t>(i)] = static_cast<int8_t>(static_cast<int>(Hash(i) % 255) - 127);
    }
    for (size_t i = 0; i < p.scales.size(); ++i) p.scales[i] = 1e-4f;
    for (int64_t c = 0; c < p.count; ++c) {
      cpu::WeightMatrix w;
      w.format = cpu::WeightFormat::kQ8_0;
      w.rows = n;
      w.cols = k;
      w.quants = p.quants.data() + c * n * k;
      w.scales = p.scales.data() + c * blocks;
      p.views.push_back(w);
    }
  } else {
    p.f32.resize(static_cast<size_t>(elems));
    for (int64_t i = 0; i < elems; ++i) p.f32[static_cast<size_t>(i)] = SmallFloat(i);
    for (int64_t c = 0; c < p.count; ++c) {
      p.views.push_back(cpu::WeightMatrix::F32(p.f32.data() + c * n * k, n, k));
    }
  }
  return p;
}

std::vector<float> Activations(int64_t m, int64_t k) {
  std::vector<float> x(static_cast<size_t>(m * k));
  for (size_t i = 0; i < x.size(); ++i) x[i] = SmallFloat(i + 12345) * 1e3f;
  return x;
}

// --- Products: args are (N, K, M) -------------------------------------------------------------

// cblas: the f32 pool through OpenBLAS sgemm instead of WeightMatmul.
void RunWeightMatmul(benchmark::State& state, Kind kind, bool cblas = false) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  const Pool pool = MakePool(kind, n, k);
  const std::vector<float> x = Activations(m, k);
  std::vector<float> y(static_cast<size_t>(m * n));
  int64_t next = 0;
  double seconds = 0;
  for (auto _ : state) {
    const double t0 = Now();
    if (cblas) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m),
                  static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, x.data(),
                  static_cast<blasint>(k), pool.f32.data() + next * n * k, static_cast<blasint>(k),
                  0.0f, y.data(), static_cast<blasint>(n));
    } else {
      cpu::WeightMatmul(x.data(), k, m, pool.views[static_cast<size_t>(next)], y.data(), n, 0, n);
    }
    seconds += Now() - t0;
    benchmark::DoNotOptimize(y.data());
    next = (next + 1) % pool.count;
  }
  Report(state, static_cast<double>(BytesPerMatrix(kind, n, k)), seconds);
  state.SetLabel(cblas ? "openblas sgemm, 1 thread" : cpu::CpuPathName(cpu::BestCpuPath()));
}

void BM_Bf16(benchmark::State& state) { RunWeightMatmul(state, Kind::kBf16); }
void BM_Q8_0(benchmark::State& state) { RunWeightMatmul(state, Kind::kQ8_0); }
void BM_F16(benchmark::State& state) { RunWeightMatmul(state, Kind::kF16); }
void BM_F32(benchmark::State& state) { RunWeightMatmul(state, Kind::kF32); }
void BM_F32Cblas(benchmark::State& state) { RunWeightMatmul(state, Kind::kF32, /*cblas=*/true); }

// Fused gate-up of one expert ([I x H] each): the bytes of both matrices per call. Gate and up
// are consecutive matrices of the pool. Args (I, H, M).
void RunGateUp(benchmark::State& state, Kind kind) {
  const int64_t inter = state.range(0), hidden = state.range(1), m = state.range(2);
  const Pool pool = MakePool(kind, inter, hidden);
  const std::vector<float> x = Activations(m, hidden);
  std::vector<float> h(static_cast<size_t>(m * inter));
  int64_t next = 0;
  double seconds = 0;
  for (auto _ : state) {
    const double t0 = Now();
    cpu::WeightSwiGluGateUp(x.data(), hidden, m, pool.views[static_cast<size_t>(next)],
                            pool.views[static_cast<size_t>(next + 1)], h.data(), inter, 0, inter);
    seconds += Now() - t0;
    benchmark::DoNotOptimize(h.data());
    next = (next + 2) % (pool.count - 1);
  }
  Report(state, 2.0 * static_cast<double>(BytesPerMatrix(kind, inter, hidden)), seconds);
  state.SetLabel(cpu::CpuPathName(cpu::BestCpuPath()));
}

void BM_GateUpBf16(benchmark::State& state) { RunGateUp(state, Kind::kBf16); }
void BM_GateUpQ8_0(benchmark::State& state) { RunGateUp(state, Kind::kQ8_0); }

// DeepSeek-V2-Lite: expert gate/up [1408 x 2048], expert down [2048 x 1408], attention-sized
// [2048 x 2048]; M = 1 (decode) and 8 (a small batch).
void Shapes(benchmark::internal::Benchmark* b) {
  for (int64_t m : {1, 8}) {
    b->Args({1408, 2048, m});
    b->Args({2048, 1408, m});
    b->Args({2048, 2048, m});
  }
  b->ArgNames({"N", "K", "M"})->UseRealTime();
}

void GateUpShapes(benchmark::internal::Benchmark* b) {
  b->Args({1408, 2048, 1})->Args({1408, 2048, 8})->ArgNames({"I", "H", "M"})->UseRealTime();
}

// Registration order is run order: the read bandwidth is measured first.
BENCHMARK(BM_StreamRead)
    ->Arg(0)
    ->Arg(1024)
    ->ArgName("prefetch")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Bf16)->Apply(Shapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Q8_0)->Apply(Shapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_F16)->Apply(Shapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_F32)->Apply(Shapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_F32Cblas)->Apply(Shapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GateUpBf16)->Apply(GateUpShapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GateUpQ8_0)->Apply(GateUpShapes)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace kubemoe

int main(int argc, char** argv) {
  openblas_set_num_threads(1);  // the comparison is per thread, like the kernels
  using kubemoe::cpu::CpuPath;
  benchmark::AddCustomContext("cpu_path", kubemoe::cpu::CpuPathName(kubemoe::cpu::BestCpuPath()));
  benchmark::AddCustomContext(
      "cpu_features",
      std::string("avx2+fma ") + (kubemoe::cpu::CpuPathSupported(CpuPath::kAvx2) ? "yes" : "no") +
          ", avx512f " + (kubemoe::cpu::CpuPathSupported(CpuPath::kAvx512) ? "yes" : "no"));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
