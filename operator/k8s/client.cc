#include "operator/k8s/client.h"

#include <fstream>
#include <sstream>

#include <boost/asio/ssl.hpp>
#include <cpprest/http_client.h>
#include <cpprest/uri_builder.h>
#include <nlohmann/json.hpp>

#include "common/mutex.h"

namespace kubemoe::k8s {

namespace http = web::http;
using Json = nlohmann::json;

struct CancelToken::State {
  pplx::cancellation_token_source source;
};

CancelToken::CancelToken() : state_(std::make_shared<State>()) {}
void CancelToken::Cancel() const { state_->source.cancel(); }
bool CancelToken::cancelled() const { return state_->source.get_token().is_canceled(); }

namespace {

// Tokens are re-read this often so a rotated service-account token is picked up.
constexpr auto kTokenRefresh = std::chrono::minutes(1);

StatusOr<std::string> ReadWholeFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return FailedPrecondition(std::string("cannot read the ") + what + " file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

}  // namespace

struct Client::Impl {
  ClientConfig config;
  http::client::http_client_config http_config;
  std::chrono::milliseconds request_timeout{30000};

  Mutex mu;
  std::string token KUBEMOE_GUARDED_BY(mu);
  std::chrono::steady_clock::time_point token_read KUBEMOE_GUARDED_BY(mu);
  std::unique_ptr<http::client::http_client> client KUBEMOE_GUARDED_BY(mu);  // (rebuilt on timeout change)

  std::string Token() {
    MutexLock lock(&mu);
    if (config.token_file.empty()) return config.token;
    auto now = std::chrono::steady_clock::now();
    if (token.empty() || now - token_read >= kTokenRefresh) {
      StatusOr<std::string> text = ReadWholeFile(config.token_file, "token");
      if (text.ok()) token = Trim(*text);  // keep the old token if the file is briefly missing
      token_read = now;
    }
    return token;
  }

  std::unique_ptr<http::client::http_client> MakeClient(std::chrono::milliseconds timeout) const {
    http::client::http_client_config c = http_config;
    c.set_timeout(timeout);
    return std::make_unique<http::client::http_client>(config.server, c);
  }

  http::client::http_client& SharedClient() {
    MutexLock lock(&mu);
    if (!client) client = MakeClient(request_timeout);
    return *client;
  }

  http::http_request NewRequest(const http::method& method, const std::string& path_and_query) {
    http::http_request req(method);
    req.set_request_uri(path_and_query);
    req.headers().add("Accept", "application/json");
    req.headers().add("User-Agent", "kubemoe-operator");
    std::string t = Token();
    if (!t.empty()) req.headers().add("Authorization", "Bearer " + t);
    return req;
  }

  // Sends `req` and decodes the answer: the JSON body on 2xx, an ApiError otherwise.
  ApiResult<Json> Send(http::http_request req, const RequestOptions& options = {}) {
    // cpprest sets the timeout per client, so a per-call timeout needs a client of its own
    // (declared out here: it must outlive the body read).
    std::unique_ptr<http::client::http_client> own;
    if (options.timeout.count() > 0) own = MakeClient(options.timeout);
    try {
      http::http_response resp = (own ? *own : SharedClient()).request(req).get();
      std::string body = resp.extract_utf8string(true).get();
      int code = resp.status_code();
      if (code >= 200 && code < 300) {
        if (body.empty()) return Json::object();
        Json parsed = Json::parse(body, nullptr, /*allow_exceptions=*/false);
        if (parsed.is_discarded()) {
          return ApiError(code, ApiReason::kUnknown,
                          "the server answered " + std::to_string(code) + " with a body that is not JSON");
        }
        return parsed;
      }
      ApiError error = ApiError::FromResponse(code, body);
      auto retry = resp.headers().find("Retry-After");
      if (retry != resp.headers().end()) {
        try {
          error.set_retry_after_seconds(std::stoi(retry->second));
        } catch (const std::exception&) {
        }
      }
      return error;
    } catch (const http::http_exception& e) {
      return ApiError::Transport(std::string(req.method()) + " " + req.request_uri().to_string() +
                                 ": " + e.what());
    } catch (const std::exception& e) {
      return ApiError::Transport(std::string(req.method()) + " " + req.request_uri().to_string() +
                                 ": " + e.what());
    }
  }

  ApiResult<Json> SendJson(const http::method& method, const std::string& path_and_query,
                           const Json& body, const std::string& content_type,
                           const RequestOptions& options = {}) {
    http::http_request req = NewRequest(method, path_and_query);
    req.set_body(body.dump(), content_type);
    return Send(std::move(req), options);
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

StatusOr<std::unique_ptr<Client>> Client::Create(ClientConfig config) {
  auto impl = std::make_unique<Impl>();
  std::string ca = config.certificate_authority_pem;
  if (!config.certificate_authority_file.empty()) {
    StatusOr<std::string> text = ReadWholeFile(config.certificate_authority_file, "certificate-authority");
    if (!text.ok()) return text.status();
    ca += "\n" + *text;
  }
  std::string cert = config.client_certificate_pem;
  if (!config.client_certificate_file.empty()) {
    StatusOr<std::string> text = ReadWholeFile(config.client_certificate_file, "client-certificate");
    if (!text.ok()) return text.status();
    cert = *text;
  }
  std::string key = config.client_key_pem;
  if (!config.client_key_file.empty()) {
    StatusOr<std::string> text = ReadWholeFile(config.client_key_file, "client-key");
    if (!text.ok()) return text.status();
    key = *text;
  }
  if (!config.token_file.empty()) {
    StatusOr<std::string> text = ReadWholeFile(config.token_file, "token");
    if (!text.ok()) return text.status();
  }
  try {
    web::uri check(config.server);
    if (check.host().empty()) return InvalidArgument("server URL has no host: " + config.server);
  } catch (const std::exception& e) {
    return InvalidArgument("server URL \"" + config.server + "\" is not valid: " + e.what());
  }
  impl->http_config.set_validate_certificates(!config.insecure_skip_tls_verify);
  if (!ca.empty() || !cert.empty()) {
    impl->http_config.set_ssl_context_callback([ca, cert, key](boost::asio::ssl::context& ctx) {
      // Errors surface as a failed handshake on the request; the callback must not throw.
      boost::system::error_code ignored;
      if (!ca.empty()) ctx.add_certificate_authority(boost::asio::buffer(ca), ignored);
      if (!cert.empty()) {
        ctx.use_certificate_chain(boost::asio::buffer(cert), ignored);
        ctx.use_private_key(boost::asio::buffer(key), boost::asio::ssl::context::pem, ignored);
      }
    });
  }
  impl->config = std::move(config);
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

const ClientConfig& Client::config() const { return impl_->config; }

void Client::set_request_timeout(std::chrono::milliseconds timeout) {
  MutexLock lock(&impl_->mu);
  impl_->request_timeout = timeout;
  impl_->client.reset();
}

ApiResult<Json> Client::Get(const Resource& resource, std::string_view ns, std::string_view name,
                            std::string_view subresource, const RequestOptions& options) {
  return impl_->Send(impl_->NewRequest(http::methods::GET, ObjectPath(resource, ns, name, subresource)),
                     options);
}

ApiResult<Json> Client::List(const Resource& resource, std::string_view ns, const ListOptions& options) {
  web::uri_builder uri(CollectionPath(resource, ns));
  if (!options.label_selector.empty()) uri.append_query("labelSelector", options.label_selector, true);
  if (!options.resource_version.empty()) uri.append_query("resourceVersion", options.resource_version, true);
  return impl_->Send(impl_->NewRequest(http::methods::GET, uri.to_string()));
}

ApiResult<Json> Client::Create(const Resource& resource, std::string_view ns, const Json& object,
                               const RequestOptions& options) {
  return impl_->SendJson(http::methods::POST, CollectionPath(resource, ns), object, "application/json",
                         options);
}

ApiResult<Json> Client::Update(const Resource& resource, std::string_view ns, std::string_view name,
                               const Json& object, std::string_view subresource,
                               const RequestOptions& options) {
  return impl_->SendJson(http::methods::PUT, ObjectPath(resource, ns, name, subresource), object,
                         "application/json", options);
}

ApiResult<Json> Client::MergePatch(const Resource& resource, std::string_view ns,
                                   std::string_view name, const Json& patch,
                                   std::string_view subresource) {
  return impl_->SendJson(http::methods::PATCH, ObjectPath(resource, ns, name, subresource), patch,
                         "application/merge-patch+json");
}

ApiResult<Json> Client::Apply(const Resource& resource, std::string_view ns, std::string_view name,
                              const Json& object, std::string_view subresource,
                              std::string_view field_manager) {
  web::uri_builder uri(ObjectPath(resource, ns, name, subresource));
  uri.append_query("fieldManager", std::string(field_manager), true);
  uri.append_query("force", "true");
  return impl_->SendJson(http::methods::PATCH, uri.to_string(), object, "application/apply-patch+yaml");
}

ApiError Client::Delete(const Resource& resource, std::string_view ns, std::string_view name) {
  http::http_request req = impl_->NewRequest(http::methods::DEL, ObjectPath(resource, ns, name));
  req.set_body(R"({"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background"})",
               "application/json");
  ApiResult<Json> result = impl_->Send(std::move(req));
  return result.ok() ? ApiError() : result.error();
}

ApiResult<Json> Client::Raw(std::string_view method, std::string_view path_and_query,
                           const Json* body) {
  http::http_request req = impl_->NewRequest(http::method(method), std::string(path_and_query));
  if (body != nullptr) req.set_body(body->dump(), "application/json");
  return impl_->Send(std::move(req));
}

ApiError Client::Watch(const Resource& resource, std::string_view ns, const WatchOptions& options,
                       const std::function<bool(const WatchEvent&)>& on_event,
                       const CancelToken& cancel) {
  if (cancel.cancelled()) return ApiError::Cancelled();
  web::uri_builder uri(CollectionPath(resource, ns));
  uri.append_query("watch", "true");
  if (options.bookmarks) uri.append_query("allowWatchBookmarks", "true");
  if (!options.resource_version.empty()) uri.append_query("resourceVersion", options.resource_version, true);
  if (!options.label_selector.empty()) uri.append_query("labelSelector", options.label_selector, true);
  uri.append_query("timeoutSeconds", std::to_string(options.timeout_seconds));
  const std::string target = uri.to_string();
  pplx::cancellation_token token = cancel.state()->source.get_token();
  try {
    // A client of its own: its timeout must outlast the server-side timeoutSeconds.
    http::client::http_client_config c = impl_->http_config;
    c.set_timeout(std::chrono::seconds(options.timeout_seconds + 30));
    http::client::http_client client(impl_->config.server, c);
    http::http_response resp = client.request(impl_->NewRequest(http::methods::GET, target), token).get();
    if (resp.status_code() != http::status_codes::OK) {
      std::string body = resp.extract_utf8string(true).get();
      return ApiError::FromResponse(resp.status_code(), body);
    }
    concurrency::streams::streambuf<uint8_t> buf = resp.body().streambuf();
    using traits = concurrency::streams::streambuf<uint8_t>::traits;
    LineSplitter lines;
    std::string line;
    uint8_t chunk[16384];
    while (true) {
      if (token.is_canceled()) return ApiError::Cancelled();
      // Wait for one byte (or the end), then take whatever else has already arrived.
      int first = buf.bumpc().get();
      if (first == traits::eof()) break;
      chunk[0] = static_cast<uint8_t>(first);
      size_t n = 1;
      size_t avail = buf.in_avail();
      if (avail > 0) n += buf.getn(chunk + 1, std::min(avail, sizeof(chunk) - 1)).get();
      Status appended = lines.Append(std::string_view(reinterpret_cast<const char*>(chunk), n));
      if (!appended.ok()) return ApiError::Transport("watch " + target + ": " + appended.message());
      while (lines.Next(&line)) {
        StatusOr<WatchEvent> event = DecodeWatchEvent(line);
        if (!event.ok()) {
          return ApiError::Transport("watch " + target + ": " + event.status().message());
        }
        if (!on_event(*event)) return ApiError();
      }
    }
    if (lines.pending_bytes() > 0) {
      return ApiError::Transport("watch " + target + ": the stream ended inside an event");
    }
    return ApiError();
  } catch (const pplx::task_canceled&) {
    return ApiError::Cancelled();
  } catch (const std::exception& e) {
    if (token.is_canceled()) return ApiError::Cancelled();
    return ApiError::Transport("watch " + target + ": " + e.what());
  }
}

}  // namespace kubemoe::k8s
