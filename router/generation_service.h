// What the router's HTTP layer asks of the generation side: submit tokenized requests, receive
// their tokens as they are sampled. The continuous-batching scheduler (router/scheduler.h)
// implements it; HTTP tests may use a fake.
//
// Text-level work (tokenizing, chat templates, detokenizing, stop strings) belongs to the HTTP
// layer; token-level work (max_tokens, EOS, stop token ids, sampling, KV cache) to the scheduler.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/sampler.h"

namespace kubemoe::router {

struct GenerationParams {
  std::vector<int32_t> prompt;  // at least one token
  int64_t max_tokens = 16;      // >= 1
  engine::SamplingParams sampling;
  std::vector<int32_t> stop_tokens;  // stop after sampling any of these (not emitted)
  bool stop_at_eos = true;           // also stop at the model's eos_token_id
  // The request fails with DeadlineExceeded if not finished by then.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

enum class FinishReason {
  kStop,       // EOS or a stop token
  kLength,     // max_tokens reached
  kCancelled,  // the stream asked to stop (client gone, stop string matched)
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// Receives one request's tokens. Called from the scheduler's thread, in order; implementations
// must return quickly and never block on the network.
class TokenStream {
 public:
  virtual ~TokenStream() = default;
  // One sampled token. Return false to end the request now (FinishReason::kCancelled follows).
  virtual bool OnToken(int32_t token) = 0;
  // Called exactly once, last. `status` is OK, or why the request failed (e.g. Unavailable when
  // an expert shard died, DeadlineExceeded); `reason` is meaningful only when status is OK.
  virtual void OnFinish(const Status& status, FinishReason reason, const Usage& usage) = 0;
  // Polled before every step: true when the client is gone, so the request is dropped and its
  // sequence and KV cache freed (OnFinish then reports kCancelled).
  virtual bool Cancelled() const { return false; }
};

class GenerationService {
 public:
  virtual ~GenerationService() = default;
  // Queues a request. Errors, without calling the stream: InvalidArgument (empty prompt, token
  // outside the vocabulary, max_tokens < 1), OutOfRange (prompt + max_tokens longer than the
  // context: HTTP 413), ResourceExhausted (queue full: HTTP 429), Unavailable (expert shards not
  // ready: HTTP 503).
  virtual Status Submit(GenerationParams params, std::shared_ptr<TokenStream> stream) = 0;
  // Longest prompt + completion a sequence may have.
  virtual int64_t max_context() const = 0;
  // True when requests can be served (every shard healthy on the current placement version).
  virtual bool Ready(std::string* why_not) const = 0;
};

}  // namespace kubemoe::router
