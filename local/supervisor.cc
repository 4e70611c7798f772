#include "local/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

namespace kubemoe::local {
namespace {

using Clock = std::chrono::steady_clock;

// A process that ran this long is healthy again: its next exit starts the backoff afresh.
constexpr auto kHealthyRun = std::chrono::seconds(60);

}  // namespace

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return "killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  return "status " + std::to_string(status);
}

Supervisor::Supervisor(std::ostream& log, std::string state_file)
    : log_(log), state_file_(std::move(state_file)) {}

Supervisor::~Supervisor() { StopAll(); }

Status Supervisor::Spawn(Entry& e) {
  const SupervisedProcess& p = e.process;
  std::vector<std::string> argv_s = {p.binary};
  argv_s.insert(argv_s.end(), p.spec.args.begin(), p.spec.args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int fd = ::open(p.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Unavailable("cannot open " + p.log_path + ": " + std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd);
    return Unavailable("fork failed: " + std::string(std::strerror(errno)));
  }
  if (pid == 0) {
    // Child: logs to the file, its own process group (Ctrl-C reaches the supervisor only).
    ::setpgid(0, 0);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    for (const auto& [k, v] : p.spec.env) ::setenv(k.c_str(), v.c_str(), 1);
    ::execv(p.binary.c_str(), argv.data());
    const std::string msg = "exec " + p.binary + " failed: " + std::strerror(errno) + "\n";
    (void)!::write(STDERR_FILENO, msg.data(), msg.size());
    ::_exit(127);
  }
  ::close(fd);
  e.pid = pid;
  e.started = Clock::now();
  e.waiting_restart = false;
  log_ << "kubemoe up: started " << p.spec.name << " (pid " << pid << "), log " << p.log_path
       << std::endl;
  WriteState();
  return Status::Ok();
}

Status Supervisor::Start(SupervisedProcess process) {
  Entry entry;
  entry.process = std::move(process);
  entries_.push_back(std::move(entry));
  return Spawn(entries_.back());
}

bool Supervisor::Poll(std::string* why) {
  while (true) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    for (Entry& e : entries_) {
      if (e.pid != pid) continue;
      e.pid = -1;
      const std::string how = DescribeExit(status);
      if (!e.process.restart) {
        *why = e.process.spec.name + " (pid " + std::to_string(pid) + ") exited with " + how +
               "; see " + e.process.log_path;
        WriteState();
        return false;
      }
      e.consecutive_failures =
          Clock::now() - e.started >= kHealthyRun ? 1 : e.consecutive_failures + 1;
      if (e.consecutive_failures > max_restarts) {
        *why = e.process.spec.name + " keeps dying (" + std::to_string(e.consecutive_failures) +
               " exits in a row, the last with " + how + "); see " + e.process.log_path;
        WriteState();
        return false;
      }
      const auto backoff =
          std::min(initial_backoff * (1 << std::min(e.consecutive_failures - 1, 10)), max_backoff);
      e.restart_at = Clock::now() + backoff;
      e.waiting_restart = true;
      log_ << "kubemoe up: " << e.process.spec.name << " (pid " << pid << ") exited with " << how
           << "; restarting in " << std::chrono::duration<double>(backoff).count()
           << " s (restart " << e.consecutive_failures << " of at most " << max_restarts << ")"
           << std::endl;
      WriteState();
    }
  }
  for (Entry& e : entries_) {
    if (e.waiting_restart && Clock::now() >= e.restart_at) {
      Status s = Spawn(e);
      if (!s.ok()) {
        *why = "cannot restart " + e.process.spec.name + ": " + s.message();
        return false;
      }
    }
  }
  return true;
}

void Supervisor::StopAll(std::chrono::milliseconds grace) {
  bool any = false;
  for (Entry& e : entries_) {
    e.waiting_restart = false;
    if (e.pid > 0) {
      ::kill(e.pid, SIGTERM);
      any = true;
    }
  }
  const auto deadline = Clock::now() + grace;
  while (any) {
    any = false;
    for (Entry& e : entries_) {
      if (e.pid <= 0) continue;
      int status = 0;
      if (::waitpid(e.pid, &status, WNOHANG) == e.pid) {
        e.pid = -1;
      } else if (Clock::now() >= deadline) {
        ::kill(e.pid, SIGKILL);
        ::waitpid(e.pid, &status, 0);
        e.pid = -1;
      } else {
        any = true;
      }
    }
    if (any) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  WriteState();
}

pid_t Supervisor::pid(const std::string& name) const {
  for (const Entry& e : entries_) {
    if (e.process.spec.name == name) return e.pid;
  }
  return -1;
}

void Supervisor::WriteState() const {
  if (state_file_.empty()) return;
  nlohmann::json state = nlohmann::json::object();
  for (const Entry& e : entries_) state[e.process.spec.name] = e.pid;
  const std::string tmp = state_file_ + ".tmp";
  {
    std::ofstream out(tmp);
    out << state.dump() << "\n";
  }
  std::rename(tmp.c_str(), state_file_.c_str());
}

}  // namespace kubemoe::local
