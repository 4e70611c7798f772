// Engine prefill and decode throughput on the `bench` preset, with the machine's own limits
// measured in the same run by the same number of threads:
//   kubemoe make-model --preset bench --out DIR --dtype bf16
//   engine_bench --model=DIR [--threads=N] [--weight-dtype=as-stored|q8_0]
//                [--kv-cache-dtype=f32|bf16]
// (KUBEMOE_BENCH_MODEL=DIR works too). Benchmarks, in this order:
//   BM_ReadBandwidth         STREAM-style read of 1 GiB, split over the threads (GB_s).
//   BM_DenseGemm             OpenBLAS sgemm on the prefill shape 64 x 2048 x 10944 with the same
//                            threads (GFLOP_s): the dense rate prefill is compared with. (Debian's
//                            OpenBLAS 0.3.21 is built without cblas_sbgemm, and this CPU has no
//                            bf16 arithmetic, so f32 sgemm is the best bf16-weight GEMM too.)
//   BM_Prefill/batch:B       B prompts of 64 tokens: tokens/s, GFLOP_s of the weight products and
//                            of_best_gemm (that rate / the best BM_DenseGemm).
//   BM_Decode/batch:B        16 steps at a context of 64-80: tokens/s; weight_GB_s (the bytes of
//                            weights one step reads x steps/s) and of_read_bw (/ BM_ReadBandwidth).
// After them: the peak RSS since the model began loading, against the checkpoint's bytes. Without a
// model the engine benchmarks report an error and are skipped.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "bench/stream_read.h"
#include "common/thread_pool.h"
#include "engine/model.h"
#include "kernels/cpu/weight_gemm.h"

namespace kubemoe::engine {
namespace {

constexpr int64_t kPrompt = 64;
constexpr int64_t kDecodeSteps = 16;
constexpr int64_t kStreamBytes = int64_t{1} << 30;
// The prefill GEMM reference: 64 tokens through the dense MLP's up projection.
constexpr int64_t kGemmM = 64, kGemmK = 2048, kGemmN = 10944;

std::string g_model_dir;
int g_threads = 0;
WeightDType g_weight_dtype = WeightDType::kAsStored;
KvCacheDType g_kv_cache_dtype = KvCacheDType::kF32;
double g_read_gbs = 0;     // best BM_ReadBandwidth
double g_gemm_gflops = 0;  // best BM_DenseGemm

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

ThreadPool& Pool() {
  static ThreadPool pool(g_threads);
  return pool;
}

void BM_ReadBandwidth(benchmark::State& state) {
  const int64_t n = kStreamBytes / 4;
  std::vector<float> a(static_cast<size_t>(n), 1.0f);
  ThreadPool& pool = Pool();
  const int64_t chunks = pool.size();
  std::vector<float> sums(static_cast<size_t>(chunks));
  double seconds = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    pool.ParallelFor(chunks, [&](int64_t c) {
      const int64_t begin = n * c / chunks / 32 * 32, end = n * (c + 1) / chunks / 32 * 32;
      sums[static_cast<size_t>(c)] = bench::StreamSum(a.data() + begin, end - begin, 0);
    });
    seconds += Seconds(start);
    benchmark::DoNotOptimize(sums.data());
  }
  const double gbs =
      static_cast<double>(kStreamBytes) * static_cast<double>(state.iterations()) / seconds / 1e9;
  state.counters["GB_s"] = gbs;
  g_read_gbs = std::max(g_read_gbs, gbs);
  state.SetLabel(std::string(bench::StreamSumLabel()) + ", " + std::to_string(pool.size()) +
                 " threads");
}

// OpenBLAS runs its own threads here, as many as the pool has.
void BM_DenseGemm(benchmark::State& state) {
  std::vector<float> a(static_cast<size_t>(kGemmM * kGemmK), 0.01f);
  std::vector<float> b(static_cast<size_t>(kGemmN * kGemmK), 0.02f);
  std::vector<float> c(static_cast<size_t>(kGemmM * kGemmN));
  cpu::SetBlasThreads(Pool().size());
  double seconds = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, kGemmM, kGemmN, kGemmK, 1.0f, a.data(),
                kGemmK, b.data(), kGemmK, 0.0f, c.data(), kGemmN);
    seconds += Seconds(start);
    benchmark::DoNotOptimize(c.data());
  }
  cpu::SetBlasThreads(1);
  const double gflops =
      2.0 * kGemmM * kGemmN * kGemmK * static_cast<double>(state.iterations()) / seconds / 1e9;
  state.counters["GFLOP_s"] = gflops;
  g_gemm_gflops = std::max(g_gemm_gflops, gflops);
  state.SetLabel("OpenBLAS sgemm, " + std::to_string(Pool().size()) + " threads");
}

// Weights one token touches, counted from the loaded model: `elements` multiply-adds of the
// weight products of one prefill token (routed experts: top_k of them) and the `bytes` one
// decode step at batch 1 reads (every dense matrix, top_k experts per MoE layer, the LM head).
struct TokenWeights {
  double elements = 0;       // per prefill token, without the LM head
  double head_elements = 0;  // the LM head (once per sequence in prefill)
  double decode_bytes = 0;
};

TokenWeights CountTokenWeights(const Model& model) {
  const ModelConfig& c = model.config();
  const ModelWeights& w = model.weights();
  TokenWeights t;
  auto add = [&](const LinearWeight& m) {
    t.elements += static_cast<double>(m.rows() * m.cols());
    t.decode_bytes += static_cast<double>(m.Bytes());
  };
  auto add_ffn = [&](const FfnWeights& f, double times) {
    for (const LinearWeight* m : {&f.gate_proj, &f.up_proj, &f.down_proj}) {
      t.elements += times * static_cast<double>(m->rows() * m->cols());
      t.decode_bytes += times * static_cast<double>(m->Bytes());
    }
  };
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LayerWeights& lw = w.layers[static_cast<size_t>(l)];
    const AttentionWeights& a = lw.attn;
    for (const LinearWeight* m :
         {&a.q_proj, &a.q_a_proj, &a.q_b_proj, &a.kv_a_proj_with_mqa, &a.kv_b_proj, &a.o_proj}) {
      add(*m);
    }
    if (lw.dense_mlp) add_ffn(*lw.dense_mlp, 1);
    if (lw.moe) {
      add(lw.moe->gate);
      if (lw.moe->shared) add_ffn(*lw.moe->shared, 1);
      const FfnWeights* expert = w.routed_experts.Find(l, 0);
      if (expert != nullptr) add_ffn(*expert, static_cast<double>(c.num_experts_per_tok));
    }
  }
  const LinearWeight& head = w.output_embedding();
  t.head_elements = static_cast<double>(head.rows() * head.cols());
  t.decode_bytes += static_cast<double>(head.Bytes());
  return t;
}

std::vector<int32_t> Prompt(int64_t seq, int64_t vocab, int64_t length) {
  std::vector<int32_t> p(static_cast<size_t>(length));
  for (int64_t i = 0; i < length; ++i)
    p[static_cast<size_t>(i)] = static_cast<int32_t>((seq * 131 + i * 7 + 3) % vocab);
  return p;
}

struct Batch {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::unique_ptr<LatentKvCache>> caches;
  std::vector<SequenceInput> in;
  Batch(const ModelConfig& c, int64_t batch, int64_t length, int64_t capacity) {
    for (int64_t s = 0; s < batch; ++s) prompts.push_back(Prompt(s, c.vocab_size, length));
    for (const auto& p : prompts) {
      caches.push_back(std::make_unique<LatentKvCache>(c, capacity, g_kv_cache_dtype));
      in.push_back({caches.back().get(), p});
    }
  }
};

Model* SharedModel(std::string* error) {
  static std::unique_ptr<Model> model;
  static std::string load_error;
  static bool tried = false;
  if (!tried) {
    tried = true;
    if (g_model_dir.empty()) {
      load_error =
          "no model: set KUBEMOE_BENCH_MODEL or --model to a `kubemoe make-model "
          "--preset bench` directory";
    } else {
      // Peak RSS from here on is the model's (resets VmHWM; Linux >= 4.0).
      std::ofstream("/proc/self/clear_refs") << "5";
      auto loaded =
          Model::Load(g_model_dir, {.weight_dtype = g_weight_dtype, .threads = g_threads});
      if (loaded.ok()) {
        model = std::move(*loaded);
        // Fault in the mapped weights: 8 short prompts reach (nearly) every routed expert.
        Batch warm(model->config(), 8, 16, 16);
        std::vector<float> logits;
        Status s = model->Forward(warm.in, {}, &logits);
        if (!s.ok()) load_error = s.ToString();
      } else {
        load_error = loaded.status().ToString();
      }
    }
  }
  *error = load_error;
  return load_error.empty() ? model.get() : nullptr;
}

void BM_Prefill(benchmark::State& state) {
  std::string error;
  Model* model = SharedModel(&error);
  if (model == nullptr) {
    state.SkipWithError(error.c_str());
    return;
  }
  const int64_t batch = state.range(0);
  std::vector<float> logits;
  double seconds = 0;
  for (auto _ : state) {
    state.PauseTiming();
    Batch b(model->config(), batch, kPrompt, kPrompt);
    state.ResumeTiming();
    const auto start = std::chrono::steady_clock::now();
    Status st = model->Forward(b.in, {}, &logits);
    seconds += Seconds(start);
    if (!st.ok()) state.SkipWithError(st.ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations() * batch * kPrompt);
  const TokenWeights t = CountTokenWeights(*model);
  const double flops = 2.0 *
                       (t.elements * static_cast<double>(batch * kPrompt) +
                        t.head_elements * static_cast<double>(batch)) *
                       static_cast<double>(state.iterations());
  state.counters["GFLOP_s"] = flops / seconds / 1e9;
  if (g_gemm_gflops > 0) state.counters["of_best_gemm"] = flops / seconds / 1e9 / g_gemm_gflops;
}

void BM_Decode(benchmark::State& state) {
  std::string error;
  Model* model = SharedModel(&error);
  if (model == nullptr) {
    state.SkipWithError(error.c_str());
    return;
  }
  const int64_t batch = state.range(0);
  const ModelConfig& c = model->config();
  // Prefilled once; each iteration decodes from copies of these caches.
  Batch prefilled(c, batch, kPrompt, kPrompt + kDecodeSteps);
  std::vector<float> logits;
  Status st = model->Forward(prefilled.in, {}, &logits);
  double seconds = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<LatentKvCache> caches;
    caches.reserve(static_cast<size_t>(batch));
    for (const auto& cache : prefilled.caches) caches.push_back(*cache);
    std::vector<int32_t> next(static_cast<size_t>(batch), 1);
    std::vector<SequenceInput> in(static_cast<size_t>(batch));
    state.ResumeTiming();
    const auto start = std::chrono::steady_clock::now();
    for (int64_t step = 0; step < kDecodeSteps && st.ok(); ++step) {
      for (int64_t s = 0; s < batch; ++s) {
        in[static_cast<size_t>(s)] = {&caches[static_cast<size_t>(s)],
                                      std::span<const int32_t>(&next[static_cast<size_t>(s)], 1)};
      }
      st = model->Forward(in, {}, &logits);
      for (int64_t s = 0; s < batch; ++s)
        next[static_cast<size_t>(s)] = static_cast<int32_t>((step * 17 + s) % c.vocab_size);
    }
    seconds += Seconds(start);
    if (!st.ok()) state.SkipWithError(st.ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations() * batch * kDecodeSteps);
  if (batch == 1) {
    const double steps_per_s = static_cast<double>(state.iterations() * kDecodeSteps) / seconds;
    const double gbs = CountTokenWeights(*model).decode_bytes * steps_per_s / 1e9;
    state.counters["weight_GB_s"] = gbs;
    if (g_read_gbs > 0) state.counters["of_read_bw"] = gbs / g_read_gbs;
  }
}

BENCHMARK(BM_ReadBandwidth)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
BENCHMARK(BM_DenseGemm)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
// At least 3 s each (one 16-step decode at batch 1 takes well under a second; on a shared
// machine a single iteration is too noisy to compare).
BENCHMARK(BM_Prefill)
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(8)
    ->Arg(32)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(3.0);
BENCHMARK(BM_Decode)
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(8)
    ->Arg(32)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(3.0);

// VmHWM of /proc/self/status: the peak resident set since the last reset.
int64_t PeakResidentBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;  // in kB
  }
  return 0;
}

int64_t CheckpointBytes(const std::string& dir) {
  int64_t bytes = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".safetensors")
      bytes += static_cast<int64_t>(entry.file_size());
  }
  return bytes;
}

}  // namespace
}  // namespace kubemoe::engine

int main(int argc, char** argv) {
  namespace e = kubemoe::engine;
  if (const char* env = std::getenv("KUBEMOE_BENCH_MODEL")) e::g_model_dir = env;
  // Our own flags, removed before Google Benchmark sees the rest.
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--model=", 8) == 0) {
      e::g_model_dir = argv[i] + 8;
    } else if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      e::g_threads = std::atoi(argv[i] + 10);
    } else if (std::strncmp(argv[i], "--weight-dtype=", 15) == 0) {
      auto dtype = kubemoe::layers::ParseWeightDType(argv[i] + 15);
      if (!dtype.ok()) {
        std::fprintf(stderr, "engine_bench: %s\n", dtype.status().message().c_str());
        return 2;
      }
      e::g_weight_dtype = *dtype;
    } else if (std::strncmp(argv[i], "--kv-cache-dtype=", 17) == 0) {
      auto dtype = e::ParseKvCacheDType(argv[i] + 17);
      if (!dtype.ok()) {
        std::fprintf(stderr, "engine_bench: %s\n", dtype.status().message().c_str());
        return 2;
      }
      e::g_kv_cache_dtype = *dtype;
    } else {
      args.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  benchmark::AddCustomContext("threads", std::to_string(e::Pool().size()));
  benchmark::AddCustomContext("weight_dtype", kubemoe::layers::WeightDTypeName(e::g_weight_dtype));
  benchmark::AddCustomContext("kv_cache_dtype", e::KvCacheDTypeName(e::g_kv_cache_dtype));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (!e::g_model_dir.empty()) {
    const double rss = static_cast<double>(e::PeakResidentBytes());
    const double ckpt = static_cast<double>(e::CheckpointBytes(e::g_model_dir));
    std::printf(
        "peak RSS since the model began loading: %.2f GB = %.3f x the checkpoint's %.2f GB\n",
        rss / 1e9, ckpt > 0 ? rss / ckpt : 0.0, ckpt / 1e9);
  }
  return 0;
}
