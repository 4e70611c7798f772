// Loopback networking helpers for `kubemoe up`: free ports and a minimal HTTP status probe
// (readiness polling must not depend on curl being installed).
#pragma once

#include <chrono>
#include <string>

namespace kubemoe::local {

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice), or -1.
int PickFreeLoopbackPort();

// GET http://127.0.0.1:<port><path> with HTTP/1.0; returns the status code, or -1 when nothing
// answers within `timeout`.
int HttpGetStatus(int port, const std::string& path, std::chrono::milliseconds timeout);

}  // namespace kubemoe::local
