#include "common/http_endpoints.h"

#include <arpa/inet.h>
#include <cpprest/http_listener.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace kubemoe::http {
namespace {

// Asks the kernel for a free port. http_listener cannot report the port it bound, so the port is
// picked here and handed to it (a tiny race with other processes, acceptable for tests).
int PickFreePort(const std::string& host) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    addr.sin_addr.s_addr = htonl(INADDR_ANY);  // a host name: any free port will do
  }
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  addr.sin_port = 0;
  int port = -1;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace

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
