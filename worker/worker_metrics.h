// The worker's Prometheus metrics (kubemoe_worker_*), registered once and updated on the hot path
// through pointers kept here (no label lookups per request, except for errors).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "common/metrics.h"
#include "layers/expert_store.h"
#include "worker/shard_experts.h"

namespace kubemoe::worker {

class WorkerMetrics {
 public:
  // Registers every family in `registry` (which must outlive this) and creates one tokens counter
  // per hosted expert, so each is exported at 0 before its first token. Also registers
  // kubemoe_build_info.
  static StatusOr<WorkerMetrics> Register(metrics::Registry& registry, const ShardExperts& experts,
                                          int64_t expert_weight_bytes, const std::string& version);

  // One finished RunExperts call: OK with its per-expert token counts, or an error code.
  void RecordSuccess(int64_t layer, const std::map<int32_t, int64_t>& expert_tokens,
                     int64_t batch_tokens, double compute_seconds);
  void RecordError(int grpc_code);
  // Tokens `expert` of `layer` has run since start (0 for an expert not hosted).
  int64_t ExpertTokens(int64_t layer, int32_t expert) const;

 private:
  metrics::Counter* requests_ = nullptr;
  metrics::CounterFamily* errors_ = nullptr;
  metrics::Histogram* batch_tokens_ = nullptr;
  metrics::Histogram* compute_seconds_ = nullptr;
  std::map<layers::ExpertKey, metrics::Counter*> expert_tokens_;  // fixed after Register
};

}  // namespace kubemoe::worker
