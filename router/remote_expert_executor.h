// The router's ExpertExecutor: routed experts run on expert-shard workers over gRPC.
//
// Dispatch buckets a layer's routes by destination shard (device / devices_per_shard) and sends
// ONE kubemoe.v1.ExpertBatch per shard that any route lands on, carrying only the tokens routed
// there, all calls in flight at once (gRPC callback API), each with the step's deadline and the
// placement version. Combine waits for every call and adds each shard's per-token partial sums.
// A shard that fails makes the whole step fail with a Status naming the shard; the router then
// ends the requests of that step with an error and keeps serving.
#pragma once

#include <grpcpp/security/credentials.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "common/status.h"
#include "engine/expert_executor.h"
#include "transport/tensor_codec.h"

namespace kubemoe::router {

struct RemoteExecutorOptions {
  std::vector<std::string> shard_addresses;  // host:port of shard i at index i
  // Plaintext when null; mutual TLS from transport::GrpcChannelCredentials otherwise.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  int32_t devices_per_shard = 1;
  transport::WireDType wire_dtype = transport::WireDType::kBf16;
  // Upper bound on one layer's dispatch when the step's own deadline is later (or none).
  std::chrono::milliseconds dispatch_timeout{30000};
};

class RemoteExpertExecutor final : public engine::ExpertExecutor {
 public:
  // Opens one channel per shard (connections are made lazily by gRPC). `registry` may be null;
  // otherwise the per-shard dispatch metrics are registered there:
  //   kubemoe_router_dispatch_bytes_total{shard,direction="sent"|"received"}
  //   kubemoe_router_dispatch_seconds{shard}            (histogram, one RPC)
  //   kubemoe_router_dispatch_tokens_total{shard}
  //   kubemoe_router_dispatch_errors_total{shard,code}
  // `on_shard_failure(shard, status)` (may be empty) is called when an RPC to a shard fails with
  // UNAVAILABLE or DEADLINE_EXCEEDED, so health tracking can react before its next probe.
  static StatusOr<std::unique_ptr<RemoteExpertExecutor>> Create(
      RemoteExecutorOptions options, metrics::Registry* registry,
      std::function<void(int32_t, const Status&)> on_shard_failure = {});
  ~RemoteExpertExecutor() override;

  // REQUIRES: every route has a device (the router routes with a placement).
  StatusOr<std::unique_ptr<engine::PendingExperts>> Dispatch(
      const engine::ExpertDispatch& dispatch) override;

  int32_t num_shards() const;

  struct Impl;

 private:
  explicit RemoteExpertExecutor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kubemoe::router
