#include "router/openai_prepare.h"

#include <algorithm>

namespace kubemoe::router {
namespace {

bool Fail(ApiError* error, int status, std::string param, std::string message,
          std::string code = "") {
  error->http_status = status;
  error->type = "invalid_request_error";
  error->param = std::move(param);
  error->message = std::move(message);
  error->code = std::move(code);
  return false;
}

}  // namespace

bool PrepareGeneration(const OpenAIRequest& request, const Tokenizer& tokenizer,
                       const ChatTemplate& chat_template, const PrepareLimits& limits,
                       uint64_t random_seed, GenerationParams* params, ApiError* error) {
  const bool chat = request.endpoint == OpenAIEndpoint::kChatCompletions;
  const char* prompt_field = chat ? "messages" : "prompt";
  *params = GenerationParams();
  if (chat) {
    auto rendered = chat_template.Render(request.messages, request.add_generation_prompt);
    if (!rendered.ok()) {
      return Fail(error, 400, "messages", "chat template: " + rendered.status().message());
    }
    params->prompt = tokenizer.Encode(*rendered, /*add_special_tokens=*/false);
  } else if (request.prompt_is_tokens) {
    params->prompt = request.prompt_tokens;
  } else {
    params->prompt = tokenizer.Encode(request.prompt_text, /*add_special_tokens=*/true);
  }
  if (params->prompt.empty()) {
    return Fail(error, 400, prompt_field, "the prompt is empty after tokenization");
  }

  const int64_t prompt = static_cast<int64_t>(params->prompt.size());
  const int64_t room = limits.max_context - prompt;
  auto too_long = [&](int64_t completion) {
    return Fail(error, 413, prompt_field,
                "This model's maximum context length is " + std::to_string(limits.max_context) +
                    " tokens. However, you requested " + std::to_string(prompt + completion) +
                    " tokens (" + std::to_string(prompt) + " in the " + prompt_field + ", " +
                    std::to_string(completion) +
                    " in the completion). Please reduce the length "
                    "of the " +
                    prompt_field + " or completion.",
                "context_length_exceeded");
  };
  if (request.max_tokens && *request.max_tokens == 0) {  // echo: the prompt's logprobs only
    if (room < 0) return too_long(0);
    params->max_tokens = 0;
    params->prompt_logprobs = true;
  } else if (room < 1) {
    return too_long(1);
  } else if (request.max_tokens) {
    if (*request.max_tokens > room) return too_long(*request.max_tokens);
    params->max_tokens = *request.max_tokens;
  } else {
    params->max_tokens = chat ? room : std::min(limits.default_completion_max_tokens, room);
  }

  params->sampling.temperature = static_cast<float>(request.temperature);
  params->sampling.top_p = static_cast<float>(request.top_p);
  params->sampling.top_k = request.top_k;
  params->sampling.seed = request.seed.value_or(random_seed);
  params->stop_tokens = request.stop_token_ids;
  params->stop_at_eos = !request.ignore_eos;
  params->logprobs = request.logprobs;
  if (request.echo && request.logprobs) params->prompt_logprobs = true;
  return true;
}

}  // namespace kubemoe::router
