// kubemoe.v1.ExpertService over gRPC's callback API: each RunExperts call is queued to the
// compute threads (ComputeQueue), checked against its deadlines there, run by ExpertBatchRunner,
// counted in WorkerMetrics, and finished from the compute thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include "kubemoe/v1/expert_service.grpc.pb.h"
#include "worker/compute_queue.h"
#include "worker/expert_batch.h"
#include "worker/worker_metrics.h"

namespace kubemoe::worker {

class ExpertService final : public kubemoe::v1::ExpertService::CallbackService {
 public:
  // REQUIRES: every argument outlives the service and every call in flight (stop the gRPC server
  // before the queue, and the queue before the runner and metrics).
  ExpertService(const ExpertBatchRunner& runner, ComputeQueue& queue, WorkerMetrics& metrics)
      : runner_(runner), queue_(queue), metrics_(metrics) {}

  // Answers, besides the runner's errors: DEADLINE_EXCEEDED when the call waited in the queue
  // longer than deadline_budget_micros (a negative budget: already spent) or past the call's
  // deadline; CANCELLED when the client went away; UNAVAILABLE while shutting down;
  // RESOURCE_EXHAUSTED when the batch does not fit in memory.
  grpc::ServerUnaryReactor* RunExperts(grpc::CallbackServerContext* context,
                                       const kubemoe::v1::ExpertBatch* batch,
                                       kubemoe::v1::ExpertBatchResult* result) override;

 private:
  const ExpertBatchRunner& runner_;
  ComputeQueue& queue_;
  WorkerMetrics& metrics_;
};

}  // namespace kubemoe::worker
