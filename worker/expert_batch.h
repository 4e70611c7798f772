// Validates one ExpertBatch against what this shard serves and runs it: the gRPC-free core of
// ExpertService.RunExperts, so it can be tested and fuzzed without a server.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "common/thread_pool.h"
#include "kubemoe/v1/expert_service.pb.h"
#include "layers/expert_store.h"
#include "worker/shard_experts.h"

namespace kubemoe::worker {

class ExpertBatchRunner {
 public:
  // REQUIRES: `experts`, `store` and `pool` outlive the runner; `store` holds every key of
  // `experts`. Experts run on `pool`.
  ExpertBatchRunner(uint64_t placement_version, int64_t hidden_size, int32_t routed_experts,
                    const ShardExperts& experts, const layers::ExpertStore& store,
                    ThreadPool& pool);

  // Fills `result` (outputs in the dtype of hidden_states, expert_token_counts, compute_seconds,
  // layer, placement_version) or returns, checked in this order:
  //   FailedPrecondition naming both versions for another placement version;
  //   FailedPrecondition naming the layer when it is not a MoE layer;
  //   InvalidArgument for a malformed hidden_states (dtype, shape, byte length) or routes (count
  //     unequal to the rows, lists of unequal lengths, expert or device ids out of range, an
  //     expert named twice for one token, a non-finite gate weight);
  //   FailedPrecondition naming layer, expert and device for an expert not hosted on that local
  //     device (on any local device when the route names none).
  // Thread-safe: runs may proceed concurrently.
  Status Run(const kubemoe::v1::ExpertBatch& batch, kubemoe::v1::ExpertBatchResult* result) const;

 private:
  uint64_t placement_version_;
  int64_t hidden_size_;
  int32_t routed_experts_;
  const ShardExperts& experts_;
  const layers::ExpertStore& store_;
  ThreadPool& pool_;
};

}  // namespace kubemoe::worker
