// Where routed experts run: a dispatch/combine pair over one MoE layer's ragged routes.
//
// The MoE layer routes its tokens, calls Dispatch (which starts the routed experts: in this
// process, or as one RPC per destination shard), runs the shared experts meanwhile, and then
// calls Combine, which waits for the routed experts and adds their weighted outputs. So a remote
// executor overlaps the shared experts with the routed experts in flight.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "common/status.h"
#include "common/thread_pool.h"
#include "layers/expert_store.h"
#include "layers/routes.h"

namespace kubemoe::engine {

// One layer's routed-expert step. The pointed-to data must stay valid until Combine returns or
// the PendingExperts is destroyed.
struct ExpertDispatch {
  int64_t layer = 0;  // decoder layer index (a MoE layer)
  // Placement the routes were computed with (0 = none); a worker on another version refuses.
  uint64_t placement_version = 0;
  const float* hidden = nullptr;  // [routes->num_tokens() x hidden_size], post-attention-normed
  int64_t hidden_size = 0;
  const layers::RaggedRoutes* routes = nullptr;
  // The step fails with DeadlineExceeded when its experts have not answered by then.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

// Routed experts in flight.
class PendingExperts {
 public:
  virtual ~PendingExperts() = default;
  // Waits for the routed experts (at most until the deadline) and ADDS, for every token t,
  //   sum over its routes r of weights[r] * Expert_{expert_ids[r]}(hidden[t])
  // to out [num_tokens x hidden_size]. Called at most once. On error out is unspecified.
  virtual Status Combine(float* out) = 0;
};

class ExpertExecutor {
 public:
  virtual ~ExpertExecutor() = default;
  // Starts the routed experts of `dispatch`. Errors: a route to an expert this executor cannot
  // reach, or a transport that cannot start.
  virtual StatusOr<std::unique_ptr<PendingExperts>> Dispatch(const ExpertDispatch& dispatch) = 0;
};

// Runs routed experts in this process from an ExpertStore on `pool`, when Combine is called.
class InProcessExpertExecutor final : public ExpertExecutor {
 public:
  // REQUIRES: store and pool outlive the executor.
  InProcessExpertExecutor(const layers::ExpertStore* store, ThreadPool* pool)
      : store_(store), pool_(pool) {}

  StatusOr<std::unique_ptr<PendingExperts>> Dispatch(const ExpertDispatch& dispatch) override;

 private:
  const layers::ExpertStore* store_;
  ThreadPool* pool_;
};

}  // namespace kubemoe::engine
