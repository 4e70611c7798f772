// Engine prefill and decode throughput (tokens/s as items_per_second) on the `bench` preset:
//   kubemoe make-model --preset bench --out DIR --dtype bf16
//   KUBEMOE_BENCH_MODEL=DIR engine_bench        (or: engine_bench --model=DIR)
// Batch 1 and 16 sequences, prompts of 64 tokens; decode steps run at a context of 64-80.
// Without a model the benchmarks report an error message and are skipped.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/model.h"

namespace kubemoe::engine {
namespace {

constexpr int64_t kPrompt = 64;
constexpr int64_t kDecodeSteps = 16;

std::string g_model_dir;

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
      auto loaded = Model::Load(g_model_dir);
      if (loaded.ok()) {
        model = std::move(*loaded);
      } else {
        load_error = loaded.status().ToString();
      }
    }
  }
  *error = load_error;
  return model.get();
}

std::vector<int32_t> Prompt(int64_t seq, int64_t vocab) {
  std::vector<int32_t> p(static_cast<size_t>(kPrompt));
  for (int64_t i = 0; i < kPrompt; ++i)
    p[static_cast<size_t>(i)] = static_cast<int32_t>((seq * 131 + i * 7 + 3) % vocab);
  return p;
}

// Fresh caches of `capacity` tokens and one input per prompt, ready for a prefill Forward.
void MakeInputs(const ModelConfig& c, const std::vector<std::vector<int32_t>>& prompts,
                int64_t capacity, std::vector<std::unique_ptr<LatentKvCache>>* caches,
                std::vector<SequenceInput>* in) {
  caches->clear();
  in->clear();
  for (const auto& prompt : prompts) {
    caches->push_back(std::make_unique<LatentKvCache>(c, capacity));
    in->push_back({caches->back().get(), prompt});
  }
}

void BM_Prefill(benchmark::State& state) {
  std::string error;
  Model* model = SharedModel(&error);
  if (model == nullptr) {
    state.SkipWithError(error.c_str());
    return;
  }
  const int64_t batch = state.range(0);
  const ModelConfig& c = model->config();
  std::vector<std::vector<int32_t>> prompts;
  for (int64_t s = 0; s < batch; ++s) prompts.push_back(Prompt(s, c.vocab_size));
  std::vector<float> logits;
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<std::unique_ptr<LatentKvCache>> caches;
    std::vector<SequenceInput> in;
    MakeInputs(c, prompts, kPrompt, &caches, &in);
    state.ResumeTiming();
    Status st = model->Forward(in, {}, &logits);
    if (!st.ok()) state.SkipWithError(st.ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations() * batch * kPrompt);
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
  std::vector<std::vector<int32_t>> prompts;
  for (int64_t s = 0; s < batch; ++s) prompts.push_back(Prompt(s, c.vocab_size));
  std::vector<float> logits;
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<std::unique_ptr<LatentKvCache>> caches;
    std::vector<SequenceInput> in;
    MakeInputs(c, prompts, kPrompt + kDecodeSteps, &caches, &in);
    Status st = model->Forward(in, {}, &logits);
    state.ResumeTiming();
    std::vector<int32_t> next(static_cast<size_t>(batch), 1);
    for (int64_t step = 0; step < kDecodeSteps && st.ok(); ++step) {
      for (int64_t s = 0; s < batch; ++s) {
        in[static_cast<size_t>(s)].tokens =
            std::span<const int32_t>(&next[static_cast<size_t>(s)], 1);
      }
      st = model->Forward(in, {}, &logits);
      for (int64_t s = 0; s < batch; ++s)
        next[static_cast<size_t>(s)] = static_cast<int32_t>((step * 17 + s) % c.vocab_size);
    }
    if (!st.ok()) state.SkipWithError(st.ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations() * batch * kDecodeSteps);
}

BENCHMARK(BM_Prefill)
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(16)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Decode)
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(16)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace kubemoe::engine

int main(int argc, char** argv) {
  if (const char* env = std::getenv("KUBEMOE_BENCH_MODEL")) kubemoe::engine::g_model_dir = env;
  // Our own flag, removed before Google Benchmark sees the rest.
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--model=", 8) == 0) {
      kubemoe::engine::g_model_dir = argv[i] + 8;
    } else {
      args.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
