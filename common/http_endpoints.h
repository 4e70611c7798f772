// A tiny HTTP server for /healthz, /readyz and /metrics (cpprestsdk's http_listener, kept out of
// this header), shared by the operator, the router and the workers. Its own library target
// (kubemoe_http_endpoints) so that code which does not serve HTTP does not link cpprestsdk.
// Handlers run on the listener's threads and must be thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/status.h"

namespace kubemoe::http {

struct HttpReply {
  int code = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using HttpHandler = std::function<HttpReply()>;

class HttpEndpoints {
 public:
  // Listens on `host`:`port` (0 = a free port the kernel picks; "0.0.0.0" = every interface,
  // "127.0.0.1" = loopback only) and serves GET `routes` (path -> handler); other paths get 404.
  // A handler that throws answers 500. Unavailable naming the address when it cannot listen.
  static StatusOr<std::unique_ptr<HttpEndpoints>> Start(int port,
                                                        std::map<std::string, HttpHandler> routes,
                                                        const std::string& host = "0.0.0.0");
  ~HttpEndpoints();  // stops listening
  int port() const { return port_; }

 private:
  struct Impl;
  HttpEndpoints(std::unique_ptr<Impl> impl, int port);
  std::unique_ptr<Impl> impl_;
  int port_;
};

}  // namespace kubemoe::http
