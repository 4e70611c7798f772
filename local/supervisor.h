// Runs the local cluster's processes the way a kubelet runs a pod's containers: each in its own
// process with its log file, restarted with exponential backoff when it exits (1 s doubling to
// 30 s; the backoff resets after 60 s of running), and given up on when it keeps dying. The
// supervisor stops everything when a process that must not restart (the router) exits, when one
// crash-loops, or when asked to (Ctrl-C).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "common/status.h"
#include "local/local_plan.h"

namespace kubemoe::local {

struct SupervisedProcess {
  ProcessSpec spec;
  std::string binary;
  std::string log_path;  // stdout and stderr, appended across restarts
  bool restart = true;   // false: its exit stops the whole cluster
};

class Supervisor {
 public:
  // Messages (starts, exits, restarts) go to `log`. `state_file` (may be empty) is rewritten with
  // {"name": pid, ...} whenever a pid changes, so tools and tests can find the processes.
  Supervisor(std::ostream& log, std::string state_file);
  ~Supervisor();  // StopAll()

  // Starts one process now. Unavailable when fork or exec setup fails.
  Status Start(SupervisedProcess process);
  // Reaps exits and restarts what is due. Returns false when the cluster must stop (a
  // non-restarting process exited, or one exited max_restarts times in a row within minutes),
  // with the reason in `why`.
  bool Poll(std::string* why);
  // SIGTERM to every process, then SIGKILL to those still running after `grace`.
  void StopAll(std::chrono::milliseconds grace = std::chrono::seconds(5));
  pid_t pid(const std::string& name) const;

  int max_restarts = 5;
  std::chrono::milliseconds initial_backoff{1000};  // doubles per consecutive exit
  std::chrono::milliseconds max_backoff{30000};

 private:
  struct Entry {
    SupervisedProcess process;
    pid_t pid = -1;
    std::chrono::steady_clock::time_point started;
    std::chrono::steady_clock::time_point restart_at;
    int consecutive_failures = 0;
    bool waiting_restart = false;
  };
  Status Spawn(Entry& entry);
  void WriteState() const;

  std::ostream& log_;
  std::string state_file_;
  std::vector<Entry> entries_;
};

// Describes a wait() status: "exit code 3", "killed by signal 9 (Killed)".
std::string DescribeExit(int wait_status);

}  // namespace kubemoe::local
