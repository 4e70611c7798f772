// A tiny HTTP server for /healthz, /readyz and /metrics (cpprestsdk's http_listener, kept out of
// this header). Handlers run on the listener's threads and must be thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/status.h"

namespace kubemoe::op {

struct HttpReply {
  int code = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using HttpHandler = std::function<HttpReply()>;

class HttpEndpoints {
 public:
  // Listens on 0.0.0.0:`port` (0 = a free port the kernel picks) and serves GET `routes`
  // (path -> handler); other paths get 404. Unavailable naming the port when it cannot listen.
  static StatusOr<std::unique_ptr<HttpEndpoints>> Start(int port, std::map<std::string, HttpHandler> routes);
  ~HttpEndpoints();  // stops listening
  int port() const { return port_; }

 private:
  struct Impl;
  HttpEndpoints(std::unique_ptr<Impl> impl, int port);
  std::unique_ptr<Impl> impl_;
  int port_;
};

}  // namespace kubemoe::op
