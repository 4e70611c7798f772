// Generation over several sequences at once: one batched prefill of every prompt, then batched
// decode steps (one new token per live sequence) until each sequence stops.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "common/status.h"
#include "engine/model.h"
#include "engine/sampler.h"

namespace kubemoe::engine {

struct GenerationRequest {
  std::vector<int32_t> prompt;  // at least one token
  SamplingParams sampling;
  int64_t max_tokens = 16;  // new tokens at most
  // Generation stops after producing any of these (the stop token is not part of the output).
  std::vector<int32_t> stop_tokens;
  bool stop_at_eos = true;  // also stop at the config's eos_token_id
};

enum class FinishReason { kStop, kLength };

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated tokens, stop token excluded
  FinishReason finish = FinishReason::kLength;
};

struct GenerationStats {
  int64_t prefill_tokens = 0;
  double prefill_seconds = 0;
  int64_t decode_tokens = 0;  // tokens produced by decode steps
  double decode_seconds = 0;
};

// Called with (request index, token) for each output token as soon as it is sampled.
using TokenCallback = std::function<void(size_t, int32_t)>;

class Engine {
 public:
  // REQUIRES: model outlives the engine. Each request's KV cache holds `kv_cache_dtype` rows.
  explicit Engine(Model* model, KvCacheDType kv_cache_dtype = KvCacheDType::kF32)
      : model_(model), kv_cache_dtype_(kv_cache_dtype) {}

  // Runs every request to completion. InvalidArgument for an empty prompt, a token outside the
  // vocabulary or max_tokens < 0; errors from the model otherwise. `stats` may be null.
  StatusOr<std::vector<GenerationResult>> Generate(const std::vector<GenerationRequest>& requests,
                                                   const TokenCallback& on_token,
                                                   GenerationStats* stats);

 private:
  Model* model_;
  KvCacheDType kv_cache_dtype_;
};

}  // namespace kubemoe::engine
