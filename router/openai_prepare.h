// A validated OpenAI request -> the token-level GenerationParams the scheduler takes: the prompt
// tokenized (completions: with the tokenizer's special tokens, e.g. BOS; chat: the chat
// template's rendering, which carries its own BOS, without), the context limit checked, the
// default max_tokens applied, and sampling and logprobs settings copied (echo with logprobs, or
// with max_tokens 0, asks for the prompt's logprobs).
#pragma once

#include <cstdint>

#include "model/tokenizer.h"
#include "router/chat_template.h"
#include "router/generation_service.h"
#include "router/openai_request.h"

namespace kubemoe::router {

struct PrepareLimits {
  int64_t max_context = 0;  // GenerationService::max_context()
  // /v1/completions without max_tokens: OpenAI's default of 16 (capped by the context);
  // /v1/chat/completions without one: the rest of the context, as vLLM does.
  int64_t default_completion_max_tokens = 16;
};

// Fills `params`. `random_seed` is used when the request gives no seed. Returns false with
// `error` set: 400 when the chat template refuses the messages or the prompt is empty, 413
// (code "context_length_exceeded") when prompt + max_tokens exceed the context.
bool PrepareGeneration(const OpenAIRequest& request, const Tokenizer& tokenizer,
                       const ChatTemplate& chat_template, const PrepareLimits& limits,
                       uint64_t random_seed, GenerationParams* params, ApiError* error);

}  // namespace kubemoe::router
