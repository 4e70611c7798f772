// Free TCP ports, for servers started with port 0 whose HTTP library cannot report the port it
// bound (cpprestsdk's http_listener): the port is picked here and handed over. A small race with
// other processes remains, acceptable for port 0's users (tests, local clusters).
#pragma once

#include <string>

namespace kubemoe {

// A port that was free on `host` (an IPv4 address; anything else means every interface) a moment
// ago, chosen by the kernel; -1 when none could be had.
int PickFreePort(const std::string& host);

}  // namespace kubemoe
