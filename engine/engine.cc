#include "engine/engine.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <span>

namespace kubemoe::engine {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

struct Live {
  size_t request = 0;
  std::unique_ptr<LatentKvCache> cache;
  Sampler sampler;
  int32_t next = 0;  // last sampled token, fed to the next decode step
  bool done = false;
};

}  // namespace

StatusOr<std::vector<GenerationResult>> Engine::Generate(
    const std::vector<GenerationRequest>& requests, const TokenCallback& on_token,
    GenerationStats* stats) {
  const ModelConfig& c = model_->config();
  GenerationStats local;
  GenerationStats& st = stats != nullptr ? *stats : local;
  st = GenerationStats{};
  std::vector<GenerationResult> results(requests.size());
  std::vector<Live> live;
  for (size_t i = 0; i < requests.size(); ++i) {
    const GenerationRequest& r = requests[i];
    if (r.prompt.empty()) {
      return InvalidArgument("request " + std::to_string(i) + " has an empty prompt");
    }
    if (r.max_tokens < 0) {
      return InvalidArgument("request " + std::to_string(i) + ": max_tokens must be >= 0");
    }
    if (r.max_tokens == 0) continue;
    // Bounded by the model's context before anything is allocated: positions past
    // max_position_embeddings are outside what the model was built for.
    const auto prompt = static_cast<int64_t>(r.prompt.size());
    if (r.max_tokens > c.max_position_embeddings - prompt) {
      return OutOfRange("request " + std::to_string(i) + ": the prompt (" + std::to_string(prompt) +
                        " tokens) plus max_tokens (" + std::to_string(r.max_tokens) +
                        ") exceeds the model's context of " +
                        std::to_string(c.max_position_embeddings) + " tokens");
    }
    const int64_t capacity = prompt + r.max_tokens;
    live.push_back(
        Live{i, std::make_unique<LatentKvCache>(c, capacity, kv_cache_dtype_), Sampler(r.sampling), 0, false});
  }
  // Records a sampled token: stop, emit, or count against max_tokens.
  auto accept = [&](Live& s, int32_t token) {
    const GenerationRequest& r = requests[s.request];
    GenerationResult& out = results[s.request];
    const bool eos = r.stop_at_eos && c.IsEosToken(token);
    if (eos ||
        std::find(r.stop_tokens.begin(), r.stop_tokens.end(), token) != r.stop_tokens.end()) {
      out.finish = FinishReason::kStop;
      s.done = true;
      return;
    }
    out.tokens.push_back(token);
    if (on_token) on_token(s.request, token);
    s.next = token;
    if (static_cast<int64_t>(out.tokens.size()) >= r.max_tokens) {
      out.finish = FinishReason::kLength;
      s.done = true;
    }
  };
  if (live.empty()) return results;

  const auto vocab = static_cast<size_t>(c.vocab_size);
  std::vector<float> logits;
  std::vector<SequenceInput> batch;
  auto t0 = std::chrono::steady_clock::now();
  for (Live& s : live) {
    batch.push_back({s.cache.get(), requests[s.request].prompt});
    st.prefill_tokens += static_cast<int64_t>(requests[s.request].prompt.size());
  }
  KUBEMOE_RETURN_IF_ERROR(model_->Forward(batch, {}, &logits));
  for (size_t i = 0; i < live.size(); ++i) {
    accept(live[i],
           live[i].sampler.Sample(std::span<const float>(logits).subspan(i * vocab, vocab)));
  }
  st.prefill_seconds = Seconds(t0);

  t0 = std::chrono::steady_clock::now();
  std::vector<Live*> step;
  while (true) {
    step.clear();
    batch.clear();
    for (Live& s : live) {
      if (s.done) continue;
      step.push_back(&s);
      batch.push_back({s.cache.get(), std::span<const int32_t>(&s.next, 1)});
    }
    if (step.empty()) break;
    KUBEMOE_RETURN_IF_ERROR(model_->Forward(batch, {}, &logits));
    st.decode_tokens += static_cast<int64_t>(step.size());
    for (size_t i = 0; i < step.size(); ++i) {
      accept(*step[i],
             step[i]->sampler.Sample(std::span<const float>(logits).subspan(i * vocab, vocab)));
    }
  }
  st.decode_seconds = Seconds(t0);
  return results;
}

}  // namespace kubemoe::engine
