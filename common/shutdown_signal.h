// SIGTERM / SIGINT as a value a thread can wait for, for the servers' graceful shutdown.
//
// A handler, not sigwait: OpenBLAS starts its threads before main with the signals unblocked, so
// a blocked-mask scheme would let the default action kill the process on one of them. The
// handler only writes the signal number to a pipe (async-signal-safe); WaitForShutdownSignal
// reads it on an ordinary thread.
#pragma once

#include "common/status.h"

namespace kubemoe {

// Installs the handler for SIGTERM and SIGINT. Call once, early in main. Internal on failure.
Status InstallShutdownSignalHandler();

// Blocks until SIGTERM or SIGINT arrives; returns the signal number.
// REQUIRES: InstallShutdownSignalHandler succeeded.
int WaitForShutdownSignal();

}  // namespace kubemoe
