// A Kubernetes REST client (JSON over HTTP/1.1, cpprestsdk underneath; that dependency stays in
// client.cc so files including this header compile quickly).
//
// Authentication: bearer token (a token file is re-read every minute so rotated service-account
// tokens keep working) or a client certificate; TLS verification against the configured CA
// bundle unless insecure-skip-tls-verify is set. Every call is synchronous, thread-safe and
// never throws: failures come back as ApiError values (see api_error.h).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "common/status.h"
#include "operator/k8s/api_error.h"
#include "operator/k8s/kubeconfig.h"
#include "operator/k8s/resource.h"
#include "operator/k8s/watch_decoder.h"

namespace kubemoe::k8s {

// The field manager of server-side apply patches.
inline constexpr char kDefaultFieldManager[] = "kubemoe-operator";

// A shareable cancellation flag. Cancel() aborts the watches and requests that were given this
// token (their calls return ApiReason::kCancelled) and makes later ones fail at once.
class CancelToken {
 public:
  CancelToken();
  void Cancel() const;
  bool cancelled() const;

  struct State;  // defined in client.cc (wraps a pplx cancellation_token_source)
  const std::shared_ptr<State>& state() const { return state_; }

 private:
  std::shared_ptr<State> state_;
};

struct ListOptions {
  std::string label_selector;    // "" = all
  std::string resource_version;  // "" = most recent (quorum read)
};

// Settings of one non-watch call.
struct RequestOptions {
  // When positive, the call fails (kTransport) once the server has sent nothing for this long,
  // instead of after the client's request timeout. Callers with a deadline of their own (leader
  // election's Lease calls) pass the time left to it. The call then uses a connection of its own.
  std::chrono::milliseconds timeout{0};
};

struct WatchOptions {
  std::string label_selector;
  std::string resource_version;  // start after this version; "" = from now (ADDED for all)
  int timeout_seconds = 300;     // the server ends the stream after this long
  bool bookmarks = true;         // allowWatchBookmarks
};

class Client {
 public:
  // Reads the files `config` names (CA bundle, client certificate and key, token file) and
  // builds the client. FailedPrecondition naming the file when one cannot be read.
  static StatusOr<std::unique_ptr<Client>> Create(ClientConfig config);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const ClientConfig& config() const;
  // The timeout of non-watch requests (default 30 s); Get, Create and Update take a per-call one
  // in RequestOptions.
  void set_request_timeout(std::chrono::milliseconds timeout);

  // GET an object (or a subresource of it, e.g. "status").
  ApiResult<nlohmann::json> Get(const Resource& resource, std::string_view ns,
                                std::string_view name, std::string_view subresource = "",
                                const RequestOptions& options = {});
  // GET a collection; the list object with metadata.resourceVersion and items.
  ApiResult<nlohmann::json> List(const Resource& resource, std::string_view ns,
                                 const ListOptions& options = {});
  // POST a new object; its namespace comes from `ns`.
  ApiResult<nlohmann::json> Create(const Resource& resource, std::string_view ns,
                                   const nlohmann::json& object,
                                   const RequestOptions& options = {});
  // PUT a whole object (or subresource). The object's metadata.resourceVersion, when set, makes
  // this an optimistic-concurrency update that fails with Conflict if the object changed.
  ApiResult<nlohmann::json> Update(const Resource& resource, std::string_view ns,
                                   std::string_view name, const nlohmann::json& object,
                                   std::string_view subresource = "",
                                   const RequestOptions& options = {});
  // PATCH with a JSON merge patch (application/merge-patch+json).
  ApiResult<nlohmann::json> MergePatch(const Resource& resource, std::string_view ns,
                                       std::string_view name, const nlohmann::json& patch,
                                       std::string_view subresource = "");
  // Server-side apply (application/apply-patch+yaml; JSON is YAML) with
  // fieldManager=`field_manager`&force=true: creates the object or takes ownership of the
  // fields `object` sets.
  ApiResult<nlohmann::json> Apply(const Resource& resource, std::string_view ns,
                                  std::string_view name, const nlohmann::json& object,
                                  std::string_view subresource = "",
                                  std::string_view field_manager = kDefaultFieldManager);
  // DELETE (background propagation). NotFound when it is already gone.
  ApiError Delete(const Resource& resource, std::string_view ns, std::string_view name);

  // Any other request (e.g. GET /version, or a test server's control endpoints): `method` is
  // "GET", "POST", "PUT", "PATCH" or "DELETE"; `body` (JSON) is sent when not null.
  ApiResult<nlohmann::json> Raw(std::string_view method, std::string_view path_and_query,
                                const nlohmann::json* body = nullptr);

  // Streams a watch: calls `on_event` for every event in arrival order, on this thread, until
  // the server ends the stream (returns OK), `on_event` returns false (OK), `cancel` is
  // cancelled (kCancelled), the connection fails or a line does not decode (kTransport), or the
  // server refuses the watch (e.g. Gone when options.resource_version is too old). ERROR events
  // are passed to `on_event` like the others; the caller decides (a 410 means relist).
  ApiError Watch(const Resource& resource, std::string_view ns, const WatchOptions& options,
                 const std::function<bool(const WatchEvent&)>& on_event,
                 const CancelToken& cancel);

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kubemoe::k8s
