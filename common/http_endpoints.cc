#include "common/http_endpoints.h"

#include <cpprest/http_listener.h>

#include "common/free_port.h"

namespace kubemoe::http {

struct HttpEndpoints::Impl {
  std::unique_ptr<web::http::experimental::listener::http_listener> listener;
  std::map<std::string, HttpHandler> routes;
};

HttpEndpoints::HttpEndpoints(std::unique_ptr<Impl> impl, int port)
    : impl_(std::move(impl)), port_(port) {}

HttpEndpoints::~HttpEndpoints() {
  try {
    impl_->listener->close().wait();
  } catch (const std::exception&) {
  }
}

StatusOr<std::unique_ptr<HttpEndpoints>> HttpEndpoints::Start(
    int port, std::map<std::string, HttpHandler> routes, const std::string& host) {
  if (port == 0) port = PickFreePort(host);
  if (port <= 0 || port > 65535) {
    return Unavailable("no free TCP port on " + host + " for the HTTP endpoints");
  }
  auto impl = std::make_unique<Impl>();
  impl->routes = std::move(routes);
  try {
    impl->listener = std::make_unique<web::http::experimental::listener::http_listener>(
        "http://" + host + ":" + std::to_string(port));
    Impl* raw = impl.get();
    impl->listener->support(web::http::methods::GET, [raw](web::http::http_request request) {
      auto it = raw->routes.find(request.relative_uri().path());
      if (it == raw->routes.end()) {
        request.reply(web::http::status_codes::NotFound, "not found\n", "text/plain").wait();
        return;
      }
      HttpReply reply;
      try {
        reply = it->second();
      } catch (const std::exception& e) {
        reply = {500, "text/plain", std::string("handler failed: ") + e.what() + "\n"};
      }
      web::http::http_response response(static_cast<web::http::status_code>(reply.code));
      response.set_body(reply.body, reply.content_type);
      request.reply(response).wait();
    });
    impl->listener->open().wait();
  } catch (const std::exception& e) {
    return Unavailable("cannot listen on " + host + ":" + std::to_string(port) + ": " + e.what());
  }
  return std::unique_ptr<HttpEndpoints>(new HttpEndpoints(std::move(impl), port));
}

}  // namespace kubemoe::http
