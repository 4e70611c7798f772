// The listener, routing and request handling of the OpenAI HTTP server (router/openai_http.h).
#include "router/openai_http.h"

#include <cstdio>
#include <ctime>
#include <thread>

#include "common/free_port.h"
#include "common/mutex.h"
#include "router/openai_http_impl.h"
#include "router/openai_prepare.h"

namespace kubemoe::router {

using nlohmann::json;
using web::http::http_request;
using web::http::methods;

namespace {

constexpr char kModels[] = "/v1/models";
constexpr char kCompletions[] = "/v1/completions";
constexpr char kChat[] = "/v1/chat/completions";


ApiError MakeError(int status, std::string type, std::string message, std::string param = "",
                   std::string code = "") {
  ApiError e;
  e.http_status = status;
  e.type = std::move(type);
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

std::string Hex(uint64_t x) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(x));
  return buf;
}

}  // namespace

std::string EndpointLabel(const OpenAIHttpOptions& options, const std::string& path) {
  if (path == kModels || path == kCompletions || path == kChat || options.get_routes.count(path)) {
    return path;
  }
  return "other";
}

pplx::task<void> ReplyJson(http_request request, int code, const json& body) {
  web::http::http_response response(static_cast<web::http::status_code>(code));
  response.set_body(DumpJson(body), "application/json");
  try {
    return request.reply(response).then([](pplx::task<void> sent) {
      try {
        sent.get();
      } catch (...) {  // the client is gone; nothing to tell it
      }
    });
  } catch (const std::exception&) {  // already replied (cannot happen by construction)
    return pplx::task_from_result();
  }
}

uint64_t OpenAIHttpServer::Impl::Random() {
  MutexLock lock(&mu);
  return rng();
}

bool OpenAIHttpServer::Impl::Track(const std::shared_ptr<RequestStream>& stream) {
  MutexLock lock(&mu);
  if (stopped) return false;
  if (active.size() >= 64 && active.size() % 64 == 0) {  // prune finished requests now and then
    std::erase_if(active, [](const auto& w) { return w.expired(); });
  }
  active.push_back(stream);
  return true;
}

void OpenAIHttpServer::Impl::ReplyError(http_request request, const std::string& path,
                                        const ApiError& e) {
  metrics.CountRequest(EndpointLabel(options, path), e.http_status);
  ReplyJson(std::move(request), e.http_status, ErrorJson(e));
}

void OpenAIHttpServer::Impl::Handle(http_request request) {
  const std::string path = request.relative_uri().path();
  const auto method = request.method();
  const bool generation = path == kCompletions || path == kChat;
  if (method == methods::GET && path == kModels) {
    json model = {{"id", options.served_model_name},
                  {"object", "model"},
                  {"created", created_at},
                  {"owned_by", "kubemoe"},
                  {"root", options.served_model_name},
                  {"parent", nullptr},
                  {"max_model_len", service->max_context()}};
    metrics.CountRequest(path, 200);
    ReplyJson(request, 200, {{"object", "list"}, {"data", json::array({model})}});
    return;
  }
  if (method == methods::GET && options.get_routes.count(path)) {
    http::HttpReply reply;
    try {
      reply = options.get_routes.at(path)();
    } catch (const std::exception& e) {
      reply = {500, "text/plain; charset=utf-8", std::string("handler failed: ") + e.what() + "\n"};
    }
    metrics.CountRequest(path, reply.code);
    web::http::http_response response(static_cast<web::http::status_code>(reply.code));
    response.set_body(reply.body, reply.content_type);
    request.reply(response).then([](pplx::task<void> sent) {
      try {
        sent.get();
      } catch (...) {
      }
    });
    return;
  }
  if (method == methods::POST && generation) {
    auto length = request.headers().content_length();
    if (length > options.max_body_bytes) {
      ReplyError(request, path,
                 MakeError(413, "invalid_request_error",
                           "request body larger than " + std::to_string(options.max_body_bytes) +
                               " bytes"));
      return;
    }
    const OpenAIEndpoint endpoint =
        path == kChat ? OpenAIEndpoint::kChatCompletions : OpenAIEndpoint::kCompletions;
    auto self = shared_from_this();
    request.extract_vector().then(
        [self, request, endpoint, path](pplx::task<std::vector<unsigned char>> body) {
          std::string text;
          try {
            auto bytes = body.get();
            text.assign(bytes.begin(), bytes.end());
          } catch (const std::exception& e) {
            self->ReplyError(request, path,
                             MakeError(400, "invalid_request_error",
                                       std::string("cannot read the request body: ") + e.what()));
            return;
          }
          if (text.size() > self->options.max_body_bytes) {
            self->ReplyError(request, path,
                             MakeError(413, "invalid_request_error", "request body too large"));
            return;
          }
          self->HandleGeneration(request, endpoint, text);
        });
    return;
  }
  if (generation || path == kModels || options.get_routes.count(path)) {
    ReplyError(
        request, path,
        MakeError(405, "invalid_request_error", "method " + method + " is not allowed on " + path));
    return;
  }
  ReplyError(request, path, MakeError(404, "invalid_request_error", "no such path: " + path));
}

void OpenAIHttpServer::Impl::HandleGeneration(http_request request, OpenAIEndpoint endpoint,
                                              const std::string& body) {
  const auto arrival = std::chrono::steady_clock::now();
  const std::string path = request.relative_uri().path();
  OpenAIRequest parsed;
  ApiError error;
  if (!ParseOpenAIRequest(body, endpoint, &parsed, &error)) {
    ReplyError(request, path, error);
    return;
  }
  if (!parsed.model.empty() && parsed.model != options.served_model_name) {
    ReplyError(
        request, path,
        MakeError(404, "invalid_request_error", "The model `" + parsed.model + "` does not exist.",
                  "model", "model_not_found"));
    return;
  }
  GenerationParams params;
  PrepareLimits limits{service->max_context(), options.default_completion_max_tokens};
  if (!PrepareGeneration(parsed, *tokenizer, *chat_template, limits, Random(), &params, &error)) {
    ReplyError(request, path, error);
    return;
  }
  ResponseMeta meta;
  meta.endpoint = endpoint;
  meta.id = (endpoint == OpenAIEndpoint::kChatCompletions ? "chatcmpl-" : "cmpl-") + Hex(Random());
  meta.created = static_cast<int64_t>(std::time(nullptr));
  meta.model = options.served_model_name;
  auto stream =
      std::make_shared<RequestStream>(shared_from_this(), request, meta, parsed, params, arrival);
  if (!Track(stream)) {
    ReplyError(request, path,
               MakeError(503, "service_unavailable_error", "the server is shutting down", "",
                         "server_shutting_down"));
    return;
  }
  stream->Begin();
  Status submitted = service->Submit(std::move(params), stream);
  if (!submitted.ok()) {
    ReplyError(request, path, ApiErrorFromStatus(submitted));
    return;
  }
  if (parsed.stream) stream->StartStreaming();
}

OpenAIHttpServer::OpenAIHttpServer(std::shared_ptr<Impl> impl, int port)
    : impl_(std::move(impl)), port_(port) {}

OpenAIHttpServer::~OpenAIHttpServer() { Stop(); }

void OpenAIHttpServer::Stop() {
  std::vector<std::shared_ptr<RequestStream>> active;
  {
    MutexLock lock(&impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
    for (const auto& w : impl_->active) {
      if (auto s = w.lock()) active.push_back(std::move(s));
    }
    impl_->active.clear();
  }
  // Answer every request in flight first and let the answers go out (bounded), so that no
  // connection waits for a reply while the listener closes (cpprestsdk's close waits for its
  // connections) and none is cut before its answer.
  std::vector<pplx::task<void>> sent;
  for (const auto& s : active) sent.push_back(s->ServerStopping());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (auto& t : sent) {
    while (!t.is_done() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  try {
    impl_->listener->close().wait();
  } catch (const std::exception&) {
  }
}

StatusOr<std::unique_ptr<OpenAIHttpServer>> OpenAIHttpServer::Start(
    OpenAIHttpOptions options, GenerationService* service, const Tokenizer* tokenizer,
    const ChatTemplate* chat_template, metrics::Registry* registry) {
  if (!service || !tokenizer || !chat_template || !registry) {
    return InvalidArgument(
        "OpenAIHttpServer: service, tokenizer, chat template and registry are required");
  }
  if (options.served_model_name.empty()) {
    return InvalidArgument("OpenAIHttpServer: served_model_name must not be empty");
  }
  auto impl = std::make_shared<Impl>();
  auto registered = OpenAIMetrics::Register(registry);
  if (!registered.ok()) return registered.status();
  impl->metrics = *registered;
  impl->service = service;
  impl->tokenizer = tokenizer;
  impl->chat_template = chat_template;
  impl->created_at = static_cast<int64_t>(std::time(nullptr));
  int port = options.port == 0 ? kubemoe::PickFreePort(options.host) : options.port;
  if (port <= 0 || port > 65535) return Unavailable("no free TCP port on " + options.host);
  const std::string address = "http://" + options.host + ":" + std::to_string(port);
  impl->options = std::move(options);
  try {
    impl->listener = std::make_unique<web::http::experimental::listener::http_listener>(address);
    Impl* raw = impl.get();  // the listener is closed before impl goes away
    impl->listener->support([raw](http_request request) { raw->Handle(std::move(request)); });
    impl->listener->open().wait();
  } catch (const std::exception& e) {
    return Unavailable("cannot listen on " + address + ": " + e.what());
  }
  return std::unique_ptr<OpenAIHttpServer>(new OpenAIHttpServer(std::move(impl), port));
}

}  // namespace kubemoe::router
