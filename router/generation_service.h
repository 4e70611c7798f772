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
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/sampler.h"

namespace kubemoe::router {

// Log-probabilities are the model's raw log-softmax of the logits (vLLM's default
// `raw_logprobs`): before temperature, top-k and top-p, so they do not depend on the sampling
// settings.
inline constexpr int32_t kMaxTopLogprobs = 20;  // vLLM's default max_logprobs

struct GenerationParams {
  std::vector<int32_t> prompt;  // at least one token
  int64_t max_tokens = 16;      // >= 1; 0 (prefill only, nothing sampled) with prompt_logprobs
  engine::SamplingParams sampling;
  // When set (0..kMaxTopLogprobs), every generated token comes with its logprob and the logprobs
  // of the `*logprobs` most likely tokens at its position (TokenStream::OnToken).
  std::optional<int32_t> logprobs;
  // The logprob of every prompt token given the tokens before it, and of the `logprobs.value_or(0)`
  // most likely tokens at its position (TokenStream::OnPromptLogprobs, before any token).
  bool prompt_logprobs = false;
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

struct TokenLogprob {
  int32_t token = 0;
  double logprob = 0;
};

// The log-probabilities at one position of a sequence.
struct PositionLogprobs {
  double logprob = 0;  // of the token that is at this position (sampled, or the prompt's)
  // The most likely tokens at this position, most likely first, lower id first on ties; as many
  // as GenerationParams::logprobs asks (it may or may not include the token itself).
  std::vector<TokenLogprob> top;
};

// One token a request generated.
struct GeneratedToken {
  int32_t id = 0;
  // True for the EOS or stop token that ends the request. It is delivered only to requests that
  // asked for logprobs (so its logprob can be reported, as vLLM does); it is not part of the text
  // nor counted in Usage::completion_tokens, and OnToken's answer for it is ignored.
  bool stop = false;
  std::optional<PositionLogprobs> logprobs;  // set when GenerationParams::logprobs is
};

// Receives one request's tokens. Called from the scheduler's thread, in order; implementations
// must return quickly and never block on the network.
class TokenStream {
 public:
  virtual ~TokenStream() = default;
  // With GenerationParams::prompt_logprobs: called once, before any OnToken (and before OnFinish
  // unless the request fails first), with prompt.size() - 1 entries, entry i for prompt token
  // i + 1 (the first prompt token has no logprob).
  virtual void OnPromptLogprobs(std::span<const PositionLogprobs> logprobs) { (void)logprobs; }
  // One sampled token. Return false to end the request now (FinishReason::kCancelled follows).
  virtual bool OnToken(const GeneratedToken& token) = 0;
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
  // outside the vocabulary, max_tokens < 1 without prompt_logprobs or < 0, logprobs outside
  // 0..kMaxTopLogprobs), OutOfRange (prompt + max_tokens longer than the
  // context: HTTP 413), ResourceExhausted (queue full: HTTP 429), Unavailable (expert shards not
  // ready: HTTP 503).
  virtual Status Submit(GenerationParams params, std::shared_ptr<TokenStream> stream) = 0;
  // Longest prompt + completion a sequence may have.
  virtual int64_t max_context() const = 0;
  // True when requests can be served (every shard healthy on the current placement version).
  virtual bool Ready(std::string* why_not) const = 0;
};

}  // namespace kubemoe::router
