// Whether every expert shard can serve the router's placement version. A background thread asks
// each shard's WorkerInfoService every period (bounded by a short deadline); a shard is ready when
// it answers with the router's placement version. Dispatch failures mark a shard not ready at
// once, so /readyz turns not-ready without waiting for the next probe.
#pragma once

#include <grpcpp/security/credentials.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "common/mutex.h"
#include "common/status.h"

namespace kubemoe::router {

class ShardHealth {
 public:
  // `registry` may be null; otherwise kubemoe_router_shard_ready{shard} (1 or 0) is exported.
  // `credentials` null: plaintext; otherwise the probes use them (mutual TLS).
  ShardHealth(std::vector<std::string> addresses, uint64_t placement_version,
              std::chrono::milliseconds period, metrics::Registry* registry,
              std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);
  ~ShardHealth();  // stops the thread
  ShardHealth(const ShardHealth&) = delete;
  ShardHealth& operator=(const ShardHealth&) = delete;

  void Start();
  // True when every shard answered the last probe with the right version; otherwise why_not
  // (may be null) names the first shard that is not ready and why.
  bool AllReady(std::string* why_not) const;
  // Marks `shard` not ready until a later probe succeeds.
  void MarkFailed(int32_t shard, const Status& why);
  // Probes every shard once now (the background thread does this every period).
  void ProbeAll();

 private:
  void Loop();

  std::vector<std::string> addresses_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  uint64_t version_;
  std::chrono::milliseconds period_;
  std::vector<metrics::Gauge*> gauges_;
  mutable Mutex mu_;
  CondVar wake_;
  bool stop_ KUBEMOE_GUARDED_BY(mu_) = false;
  std::vector<std::string> not_ready_ KUBEMOE_GUARDED_BY(mu_);  // "" when ready
  std::thread thread_;
};

}  // namespace kubemoe::router
