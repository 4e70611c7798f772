// Fuzzes the OpenAI request parser (router/openai_request.h) for both endpoints: any bytes must
// give a request or a 400 error that serialises, never a crash; a request that parses must keep
// the parser's promises, and its messages must render through the default chat template.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "router/chat_template.h"
#include "router/openai_request.h"
#include "router/openai_response.h"

namespace router = kubemoe::router;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  static const auto* chat = new router::ChatTemplate(
      std::move(router::ChatTemplate::FromSource(router::kDefaultChatTemplate, "<bos>", "<eos>"))
          .value());
  for (auto endpoint :
       {router::OpenAIEndpoint::kCompletions, router::OpenAIEndpoint::kChatCompletions}) {
    router::OpenAIRequest request;
    router::ApiError error;
    if (!router::ParseOpenAIRequest(body, endpoint, &request, &error)) {
      if (error.http_status != 400 || error.message.empty()) __builtin_trap();
      (void)router::DumpJson(router::ErrorJson(error));  // invalid UTF-8 is replaced, not thrown
      continue;
    }
    if (request.stop.size() > router::kMaxStopStrings) __builtin_trap();
    for (const auto& s : request.stop) {
      if (s.empty() || s.size() > router::kMaxStopBytes) __builtin_trap();
    }
    if (request.max_tokens && *request.max_tokens < (request.echo ? 0 : 1)) __builtin_trap();
    if (request.logprobs &&
        (*request.logprobs < 0 || *request.logprobs > router::kMaxTopLogprobs)) {
      __builtin_trap();
    }
    if (!(request.temperature >= 0.0 && request.temperature <= 2.0)) __builtin_trap();
    if (!(request.top_p > 0.0 && request.top_p <= 1.0)) __builtin_trap();
    if (!request.stream && request.include_usage) __builtin_trap();
    if (endpoint == router::OpenAIEndpoint::kCompletions) {
      if (request.prompt_is_tokens && request.prompt_tokens.empty()) __builtin_trap();
    } else {
      if (request.echo) __builtin_trap();  // completions only
      if (!request.messages.is_array() || request.messages.empty()) __builtin_trap();
      for (const auto& m : request.messages) {
        if (!m["role"].is_string() || !m["content"].is_string()) __builtin_trap();
      }
      (void)chat->Render(request.messages, request.add_generation_prompt);
    }
  }
  return 0;
}
