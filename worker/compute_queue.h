// A FIFO of expert computations run by a fixed set of threads, so gRPC's callback threads never
// block on matrix products (the callback API wants handlers that return quickly).
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "common/mutex.h"

namespace kubemoe::worker {

class ComputeQueue {
 public:
  // Starts `threads` (>= 1) threads.
  explicit ComputeQueue(int threads);
  // Stop()s.
  ~ComputeQueue();
  ComputeQueue(const ComputeQueue&) = delete;
  ComputeQueue& operator=(const ComputeQueue&) = delete;

  // Queues `task`. False (and the task is not run) once Stop has been called.
  bool Submit(std::function<void()> task);
  // Runs every task already queued, then joins the threads. Idempotent.
  void Stop();

 private:
  void Loop();

  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> tasks_ KUBEMOE_GUARDED_BY(mu_);
  bool stopping_ KUBEMOE_GUARDED_BY(mu_) = false;
  Mutex join_mu_;  // serialises Stop's joins when two threads stop the queue
  std::vector<std::thread> threads_ KUBEMOE_GUARDED_BY(join_mu_);
};

}  // namespace kubemoe::worker
