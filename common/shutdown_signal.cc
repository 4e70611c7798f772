#include "common/shutdown_signal.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>

namespace kubemoe {
namespace {

int g_pipe[2] = {-1, -1};

void OnSignal(int sig) {
  const auto byte = static_cast<unsigned char>(sig);
  (void)!::write(g_pipe[1], &byte, 1);
}

}  // namespace

Status InstallShutdownSignalHandler() {
  if (::pipe(g_pipe) != 0) return Internal("cannot create the signal pipe");
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGTERM, &action, nullptr) != 0 || sigaction(SIGINT, &action, nullptr) != 0) {
    return Internal("cannot install the SIGTERM/SIGINT handler");
  }
  return Status::Ok();
}

int WaitForShutdownSignal() {
  unsigned char sig = 0;
  while (::read(g_pipe[0], &sig, 1) < 0 && errno == EINTR) {
  }
  return sig;
}

}  // namespace kubemoe
