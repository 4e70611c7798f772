// A minimal HTTP status probe for `kubemoe up`'s readiness polling (which must not depend on curl
// being installed).
#pragma once

#include <chrono>
#include <string>

namespace kubemoe::local {

// GET http://127.0.0.1:<port><path> with HTTP/1.0; returns the status code, or -1 when nothing
// answers within `timeout`.
int HttpGetStatus(int port, const std::string& path, std::chrono::milliseconds timeout);

}  // namespace kubemoe::local
