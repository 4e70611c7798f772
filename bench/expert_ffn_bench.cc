// One routed expert's SwiGLU FFN at DeepSeek-V2-Lite's shape (gate and up [1408 x 2048], down
// [2048 x 1408]) for 1, 8, 64 and 256 tokens per expert: the engine's kernel (cpu::SwiGluFfn)
// against raw OpenBLAS sgemm doing the same three products, timed alternately in the same run.
// Counters: GFLOP/s of the kernel, of raw sgemm, and their ratio (goal >= 0.9 at 64+ tokens).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cpu/swiglu.h"

namespace kubemoe {
namespace {

constexpr int64_t kHidden = 2048;
constexpr int64_t kInter = 1408;

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void BM_ExpertFfn(benchmark::State& state) {
  const int64_t tokens = state.range(0);
  const auto w_gate = Random(kInter * kHidden, 1);
  const auto w_up = Random(kInter * kHidden, 2);
  const auto w_down = Random(kHidden * kInter, 3);
  const auto x = Random(static_cast<size_t>(tokens * kHidden), 4);
  std::vector<float> out(static_cast<size_t>(tokens * kHidden));
  std::vector<float> scratch(static_cast<size_t>(cpu::SwiGluScratchFloats(tokens, kInter)));
  std::vector<float> g(static_cast<size_t>(tokens * kInter)), u(g.size());
  const auto m = static_cast<blasint>(tokens);
  auto raw = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, kInter, kHidden, 1.0f, x.data(),
                kHidden, w_gate.data(), kHidden, 0.0f, g.data(), kInter);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, kInter, kHidden, 1.0f, x.data(),
                kHidden, w_up.data(), kHidden, 0.0f, u.data(), kInter);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, kHidden, kInter, 1.0f, g.data(), kInter,
                w_down.data(), kInter, 0.0f, out.data(), kHidden);
  };
  double ffn_seconds = 0, raw_seconds = 0;
  for (auto _ : state) {
    const double t0 = Now();
    cpu::SwiGluFfn(x.data(), tokens, kHidden, kInter, w_gate.data(), w_up.data(), w_down.data(),
                   scratch.data(), out.data());
    const double t1 = Now();
    raw();
    const double t2 = Now();
    benchmark::DoNotOptimize(out.data());
    ffn_seconds += t1 - t0;
    raw_seconds += t2 - t1;
    state.SetIterationTime(t1 - t0);
  }
  const double flops = 3.0 * 2.0 * static_cast<double>(tokens * kHidden * kInter) *
                       static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = flops / ffn_seconds / 1e9;
  state.counters["sgemm_GFLOP/s"] = flops / raw_seconds / 1e9;
  state.counters["ratio_vs_sgemm"] = raw_seconds / ffn_seconds;
  state.SetItemsProcessed(state.iterations() * tokens);
}
BENCHMARK(BM_ExpertFfn)->ArgName("tokens")->Arg(1)->Arg(8)->Arg(64)->Arg(256)->UseManualTime();

}  // namespace
}  // namespace kubemoe

BENCHMARK_MAIN();
