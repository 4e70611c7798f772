// Internal to the OpenAI HTTP server (router/openai_http*.cc): the shared server state and the
// TokenStream that carries one request's tokens to its HTTP client.
#pragma once

#include <cpprest/http_listener.h>
#include <cpprest/producerconsumerstream.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "router/openai_http.h"
#include "router/openai_logprobs.h"
#include "router/openai_metrics.h"
#include "router/openai_request.h"
#include "router/openai_response.h"
#include "router/stream_text.h"

namespace kubemoe::router {

class RequestStream;

// The metrics label for a path: the known endpoints by name, anything else "other" (so unknown
// paths cannot grow the label set without bound).
std::string EndpointLabel(const OpenAIHttpOptions& options, const std::string& path);

// Sends a JSON reply; failures to send (a client gone) are swallowed. The task completes when the
// reply has been sent or has failed.
pplx::task<void> ReplyJson(web::http::http_request request, int code, const nlohmann::json& body);

struct OpenAIHttpServer::Impl : std::enable_shared_from_this<OpenAIHttpServer::Impl> {
  OpenAIHttpOptions options;
  GenerationService* service = nullptr;
  const Tokenizer* tokenizer = nullptr;
  const ChatTemplate* chat_template = nullptr;
  OpenAIMetrics metrics;
  int64_t created_at = 0;  // Unix seconds, for /v1/models
  std::unique_ptr<web::http::experimental::listener::http_listener> listener;

  Mutex mu;
  bool stopped KUBEMOE_GUARDED_BY(mu) = false;
  std::vector<std::weak_ptr<RequestStream>> active KUBEMOE_GUARDED_BY(mu);  // pruned as it grows
  std::mt19937_64 rng KUBEMOE_GUARDED_BY(mu){std::random_device{}()};

  void Handle(web::http::http_request request);
  void HandleGeneration(web::http::http_request request, OpenAIEndpoint endpoint,
                        const std::string& body);
  void ReplyError(web::http::http_request request, const std::string& path, const ApiError& e);
  // Adds a stream to `active`; false once the server is stopping.
  bool Track(const std::shared_ptr<RequestStream>& stream);
  uint64_t Random();
};

// One request's TokenStream: text assembly, logprobs, SSE events or the final JSON reply, and
// metrics.
// OnToken and OnFinish run on the service's thread; Abort on a listener or the stopping thread;
// `mu_` orders their effects on the HTTP side.
class RequestStream final : public TokenStream, public std::enable_shared_from_this<RequestStream> {
 public:
  // `params`: what goes to the service (its prompt is echoed with its logprobs).
  RequestStream(std::shared_ptr<OpenAIHttpServer::Impl> server, web::http::http_request request,
                ResponseMeta meta, const OpenAIRequest& parsed, const GenerationParams& params,
                std::chrono::steady_clock::time_point arrival);

  // Streaming: queues chat's first chunk (the role), or the echoed prompt when its logprobs are
  // not coming, ahead of any token. Call before Submit.
  void Begin();
  // Streaming: sends the 200 text/event-stream reply whose body the events flow into. Call after
  // a successful Submit. A failed send (client gone) cancels the request.
  void StartStreaming();

  void OnPromptLogprobs(std::span<const PositionLogprobs> logprobs) override;
  bool OnToken(const GeneratedToken& token) override;
  void OnFinish(const Status& status, FinishReason reason, const Usage& usage) override;
  bool Cancelled() const override { return client_gone_ || server_stopping_; }

  // The client went away (a write to it failed): stop generating, send nothing more.
  void ClientGone();
  // The server is stopping: finish the HTTP answer now with a 503 error (event). The task
  // completes when the answer has been sent (or failed).
  pplx::task<void> ServerStopping();

 private:
  void WriteLocked(const std::string& data) KUBEMOE_REQUIRES(mu_);  // streaming, !finalized_
  void FinalizeWithErrorLocked(const ApiError& error) KUBEMOE_REQUIRES(mu_);  // !finalized_
  void FinishStreamLocked(const std::string& tail, const std::string& finish_reason,
                          const Usage& usage) KUBEMOE_REQUIRES(mu_);

  const std::shared_ptr<OpenAIHttpServer::Impl> server_;
  web::http::http_request request_;
  const ResponseMeta meta_;
  const bool stream_;
  const bool include_usage_;
  const bool echo_;
  const bool echo_waits_for_logprobs_;  // the echo goes out with the prompt's logprobs
  const std::string echo_text_;         // the prompt's text when echo_
  const std::vector<int32_t> prompt_;   // when echo_
  const std::string endpoint_label_;
  const std::chrono::steady_clock::time_point arrival_;

  std::atomic<bool> client_gone_{false};
  std::atomic<bool> server_stopping_{false};

  Mutex mu_;
  TextAssembler text_ KUBEMOE_GUARDED_BY(mu_);
  std::optional<LogprobsBuilder> logprobs_ KUBEMOE_GUARDED_BY(mu_);  // set when logprobs were asked for
  concurrency::streams::producer_consumer_buffer<uint8_t> body_;  // written under mu_
  bool finalized_ KUBEMOE_GUARDED_BY(mu_) = false;  // the HTTP answer is complete (or abandoned)
  std::chrono::steady_clock::time_point last_token_ KUBEMOE_GUARDED_BY(mu_);
  bool any_token_ KUBEMOE_GUARDED_BY(mu_) = false;
  pplx::task<void> sent_ KUBEMOE_GUARDED_BY(mu_) = pplx::task_from_result();  // the reply in progress
};

}  // namespace kubemoe::router
