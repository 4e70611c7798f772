// RequestStream: one request's tokens -> its HTTP client, streamed (SSE events written into a
// producer_consumer_buffer that cpprestsdk sends as a chunked body while we write) or whole.
#include <cpprest/http_listener.h>

#include "common/mutex.h"
#include "router/openai_http_impl.h"

namespace kubemoe::router {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// The text echo shows for the prompt: a text prompt as given; token ids decoded with their special
// tokens, so that the text is the echoed token strings joined.
std::string EchoText(const OpenAIRequest& parsed, const Tokenizer& tokenizer) {
  if (!parsed.echo) return "";
  if (!parsed.prompt_is_tokens) return parsed.prompt_text;
  return tokenizer.Decode(parsed.prompt_tokens, /*skip_special_tokens=*/false);
}

ApiError StoppingError() {
  ApiError e;
  e.http_status = 503;
  e.type = "service_unavailable_error";
  e.message = "the server is shutting down; retry the request";
  e.code = "server_shutting_down";
  return e;
}

}  // namespace

RequestStream::RequestStream(std::shared_ptr<OpenAIHttpServer::Impl> server,
                             web::http::http_request request, ResponseMeta meta,
                             const OpenAIRequest& parsed, const GenerationParams& params,
                             Clock::time_point arrival)
    : server_(std::move(server)),
      request_(std::move(request)),
      meta_(std::move(meta)),
      stream_(parsed.stream),
      include_usage_(parsed.include_usage),
      echo_(parsed.echo),
      echo_waits_for_logprobs_(parsed.echo && params.prompt_logprobs),
      echo_text_(EchoText(parsed, *server_->tokenizer)),
      prompt_(parsed.echo ? params.prompt : std::vector<int32_t>()),
      endpoint_label_(EndpointLabel(server_->options, request_.relative_uri().path())),
      arrival_(arrival),
      text_(server_->tokenizer, parsed.stop, parsed.skip_special_tokens) {
  if (parsed.logprobs) {
    logprobs_.emplace(server_->tokenizer, meta_.endpoint, parsed.return_tokens_as_token_ids);
  }
}

void RequestStream::WriteLocked(const std::string& data) {
  // A producer_consumer_buffer copies synchronously, so these tasks are already complete; sync
  // hands the bytes to a reader waiting for a larger block (the server asks for 4 KiB).
  body_.putn_nocopy(reinterpret_cast<const uint8_t*>(data.data()), data.size()).wait();
  body_.sync().wait();
}

void RequestStream::Begin() {
  MutexLock lock(&mu_);
  if (stream_ && meta_.endpoint == OpenAIEndpoint::kChatCompletions) {
    WriteLocked(SseEvent(StreamChunk(meta_, "", /*role_delta=*/true, "")));
  }
  if (stream_ && echo_ && !echo_waits_for_logprobs_) {
    WriteLocked(SseEvent(StreamChunk(meta_, echo_text_, false, "")));
  }
}

void RequestStream::StartStreaming() {
  web::http::http_response response(web::http::status_codes::OK);
  response.headers().add("Cache-Control", "no-cache");
  response.headers().add("X-Accel-Buffering", "no");  // proxies must not hold events back
  response.set_body(body_.create_istream(), "text/event-stream");
  server_->metrics.CountRequest(endpoint_label_, 200);
  std::weak_ptr<RequestStream> keep = weak_from_this();
  auto sent = request_.reply(response).then([keep](pplx::task<void> done) {
    try {
      done.get();
    } catch (...) {  // the connection failed while sending: the client is gone
      if (auto stream = keep.lock()) stream->ClientGone();
    }
  });
  MutexLock lock(&mu_);
  sent_ = sent;
}

void RequestStream::OnPromptLogprobs(std::span<const PositionLogprobs> logprobs) {
  MutexLock lock(&mu_);
  if (!echo_) return;
  if (logprobs_ && !prompt_.empty()) {
    logprobs_->Add(prompt_[0], nullptr);
    for (size_t i = 0; i < logprobs.size() && i + 1 < prompt_.size(); ++i) {
      logprobs_->Add(prompt_[i + 1], &logprobs[i]);
    }
  }
  if (stream_ && !finalized_ && !client_gone_) {
    WriteLocked(SseEvent(StreamChunk(meta_, echo_text_, false, "",
                                     logprobs_ ? logprobs_->Take() : nlohmann::json())));
  }
}

bool RequestStream::OnToken(const GeneratedToken& token) {
  MutexLock lock(&mu_);
  std::string piece;
  if (!token.stop) {  // a stop token is not text; it comes only for its logprobs
    const auto now = Clock::now();
    if (!any_token_) {
      server_->metrics.time_to_first_token->Observe(Seconds(now - arrival_));
    } else {
      server_->metrics.inter_token_latency->Observe(Seconds(now - last_token_));
    }
    any_token_ = true;
    last_token_ = now;
    piece = text_.Add(token.id);
  }
  // Chat's logprobs cover the message's tokens only (as OpenAI's); completions' also the stop
  // token (as vLLM's), so a client slicing off the last generated token finds it there.
  const bool chat = meta_.endpoint == OpenAIEndpoint::kChatCompletions;
  if (logprobs_ && !(chat && token.stop)) {
    logprobs_->Add(token.id, token.logprobs ? &*token.logprobs : nullptr);
  }
  if (stream_ && !finalized_ && !client_gone_) {
    if (logprobs_ && logprobs_->pending()) {
      WriteLocked(SseEvent(StreamChunk(meta_, piece, false, "", logprobs_->Take())));
    } else if (!piece.empty()) {
      WriteLocked(SseEvent(StreamChunk(meta_, piece, false, "")));
    }
  }
  return !text_.stopped() && !Cancelled();
}

void RequestStream::FinishStreamLocked(const std::string& tail, const std::string& finish_reason,
                                       const Usage& usage) {
  if (!tail.empty()) WriteLocked(SseEvent(StreamChunk(meta_, tail, false, "")));
  WriteLocked(SseEvent(StreamChunk(meta_, "", false, finish_reason)));
  if (include_usage_) WriteLocked(SseEvent(UsageChunk(meta_, usage)));
  WriteLocked(kSseDone);
  body_.close(std::ios_base::out).wait();
  finalized_ = true;
}

void RequestStream::FinalizeWithErrorLocked(const ApiError& error) {
  if (stream_) {
    WriteLocked(SseEvent(ErrorJson(error)));
    WriteLocked(kSseDone);
    body_.close(std::ios_base::out).wait();
  } else {
    server_->metrics.CountRequest(endpoint_label_, error.http_status);
    sent_ = ReplyJson(request_, error.http_status, ErrorJson(error));
  }
  finalized_ = true;
}

void RequestStream::OnFinish(const Status& status, FinishReason reason, const Usage& usage) {
  MutexLock lock(&mu_);
  const OpenAIMetrics& m = server_->metrics;
  m.prompt_tokens->Inc(static_cast<double>(usage.prompt_tokens));
  m.generation_tokens->Inc(static_cast<double>(usage.completion_tokens));
  const bool stopped_by_text = text_.stopped();
  if (status.ok() && (reason != FinishReason::kCancelled || stopped_by_text)) {
    m.e2e_latency->Observe(Seconds(Clock::now() - arrival_));
  }
  if (client_gone_ && !stopped_by_text) {
    m.CountSuccess("abort");
    if (stream_ && !finalized_) body_.close(std::ios_base::out).wait();
    finalized_ = true;
    return;
  }
  if (finalized_) return;  // the server stopping already answered
  if (!status.ok()) {
    FinalizeWithErrorLocked(ApiErrorFromStatus(status));
    return;
  }
  if (reason == FinishReason::kCancelled && !stopped_by_text) {
    // Cancelled without a stop string or a client gone: the service dropped it (shutting down).
    FinalizeWithErrorLocked(StoppingError());
    return;
  }
  const std::string finish_reason = stopped_by_text ? "stop" : FinishReasonName(reason);
  m.CountSuccess(finish_reason);
  std::string tail = text_.Finish();
  if (stream_) {
    FinishStreamLocked(tail, finish_reason, usage);
    return;
  }
  m.CountRequest(endpoint_label_, 200);
  sent_ = ReplyJson(request_, 200,
                    FullResponse(meta_, echo_text_ + text_.text(), finish_reason, usage,
                                 logprobs_ ? logprobs_->Take() : nlohmann::json()));
  finalized_ = true;
}

void RequestStream::ClientGone() {
  client_gone_ = true;
  MutexLock lock(&mu_);
  if (stream_ && !finalized_) {
    body_.close(std::ios_base::out).wait();  // nobody reads it any more
    finalized_ = true;
  }
}

pplx::task<void> RequestStream::ServerStopping() {
  server_stopping_ = true;
  MutexLock lock(&mu_);
  if (!finalized_) FinalizeWithErrorLocked(StoppingError());
  return sent_;
}

}  // namespace kubemoe::router
