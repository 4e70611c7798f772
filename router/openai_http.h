// The router's OpenAI-compatible HTTP server (cpprestsdk's http_listener, kept out of this header)
// over a GenerationService:
//   GET  /v1/models             the served model
//   POST /v1/completions        prompt (text or token ids) -> text
//   POST /v1/chat/completions   messages, rendered with the chat template -> assistant message
//   GET  <caller's routes>      e.g. /healthz, /readyz, /metrics
// Request fields and validation: router/openai_request.h; logprobs: router/openai_logprobs.h.
// With "stream": true the answer is text/event-stream: one `data: {chunk}` event per piece of
// text as tokens arrive (per token, with its logprobs, when logprobs were asked for; chat's first
// chunk carries the role, completions' first the prompt when echo), a final chunk with
// finish_reason, a usage chunk when stream_options.include_usage, then `data: [DONE]`.
//
// Errors are {"error": {"message", "type", "param", "code"}} with the status code: 400 malformed
// or invalid fields (and chat templates that refuse the messages), 404 unknown path or model,
// 405 wrong method, 413 body too large or prompt + max_tokens longer than the context, 429 queue
// full, 503 not ready / expert shards unavailable, 504 deadline exceeded, 500 otherwise. A failure
// after a stream has started is sent as an event `data: {"error": {...}}` followed by
// `data: [DONE]` (as vLLM does), never as a normal end.
//
// A streaming client that disconnects is noticed when a write to it fails; the request's
// TokenStream then reports Cancelled() so the service drops the sequence. (A non-streaming
// client that disconnects is not noticed: its request runs to the end.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/http_endpoints.h"
#include "common/metrics.h"
#include "common/status.h"
#include "model/tokenizer.h"
#include "router/chat_template.h"
#include "router/generation_service.h"

namespace kubemoe::router {

struct OpenAIHttpOptions {
  std::string host = "0.0.0.0";   // "127.0.0.1" for loopback only
  int port = 8000;                // 0: a free port, see OpenAIHttpServer::port()
  std::string served_model_name;  // required: /v1/models and the "model" requests must name
  // Extra GET routes (path -> handler), served as given; handlers run on listener threads, must
  // be thread-safe, and answer 500 when they throw.
  std::map<std::string, http::HttpHandler> get_routes;
  size_t max_body_bytes = 32u << 20;           // larger request bodies get 413
  int64_t default_completion_max_tokens = 16;  // /v1/completions without max_tokens
};

class OpenAIHttpServer {
 public:
  // Starts listening. The service, tokenizer, chat template and registry are not owned; they
  // must outlive the server and every TokenStream it handed to the service (stop the server,
  // then the service, then destroy them). The server's metrics (router/openai_metrics.h) are
  // registered in `registry`. InvalidArgument for a bad option or a metric name already
  // registered; Unavailable naming the address when it cannot listen.
  static StatusOr<std::unique_ptr<OpenAIHttpServer>> Start(OpenAIHttpOptions options,
                                                           GenerationService* service,
                                                           const Tokenizer* tokenizer,
                                                           const ChatTemplate* chat_template,
                                                           metrics::Registry* registry);
  ~OpenAIHttpServer();  // Stop()

  // Stops listening and cancels the requests in flight (streams get an error event if their
  // client is still there). Idempotent.
  void Stop();
  int port() const { return port_; }

  struct Impl;  // router/openai_http_impl.h

 private:
  OpenAIHttpServer(std::shared_ptr<Impl> impl, int port);
  std::shared_ptr<Impl> impl_;
  int port_;
};

}  // namespace kubemoe::router
