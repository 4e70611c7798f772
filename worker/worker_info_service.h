// kubemoe.v1.WorkerInfoService: what this shard hosts (per local device and decoder layer) and
// how many tokens each hosted expert has run, so the router can check its placement and plan
// redundant experts.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>
#include <utility>

#include "kubemoe/v1/worker_info.grpc.pb.h"
#include "worker/shard_experts.h"
#include "worker/worker_metrics.h"

namespace kubemoe::worker {

struct WorkerIdentity {
  std::string model;  // MoEModel name
  uint64_t placement_version = 0;
  std::string build_version;
};

// Fills `info`: devices of kind "cpu", each with its hosted experts per MoE layer (HostedExperts
// .layer is the decoder layer index, as in ExpertBatch.layer), and one ExpertLoad per hosted
// (layer, expert), ascending.
void FillWorkerInfo(const WorkerIdentity& identity, const ShardExperts& experts,
                    const WorkerMetrics& metrics, kubemoe::v1::WorkerInfo* info);

class WorkerInfoService final : public kubemoe::v1::WorkerInfoService::CallbackService {
 public:
  // REQUIRES: experts and metrics outlive the service.
  WorkerInfoService(WorkerIdentity identity, const ShardExperts& experts,
                    const WorkerMetrics& metrics)
      : identity_(std::move(identity)), experts_(experts), metrics_(metrics) {}

  grpc::ServerUnaryReactor* GetWorkerInfo(grpc::CallbackServerContext* context,
                                          const kubemoe::v1::WorkerInfoRequest* request,
                                          kubemoe::v1::WorkerInfo* info) override;

 private:
  WorkerIdentity identity_;
  const ShardExperts& experts_;
  const WorkerMetrics& metrics_;
};

}  // namespace kubemoe::worker
