// The router as a library: loads the dense part of the model (no routed experts), routes every
// MoE layer over the placement (model-faithful, or device-limited with --device-limit), dispatches
// routed experts to the expert shards over gRPC, batches requests continuously and answers the
// OpenAI API over HTTP, with /healthz, /readyz and /metrics. The kubemoe-router binary is
// flags -> RouterOptions -> RouterServer::Start; tests start it in-process on loopback.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "layers/linear_weight.h"
#include "router/scheduler.h"
#include "transport/tensor_codec.h"

namespace kubemoe::router {

struct RouterOptions {
  std::string model_dir;
  std::string served_model_name;  // OpenAI "model"; empty: the model directory's base name
  // Empty: no expert shards, every routed expert runs in this process (the single-process
  // baseline behind the same HTTP API and scheduler).
  std::string placement_file;
  uint64_t placement_version = 0;  // must equal the file's (0 = take the file's)
  // Shard i is at shard_addresses[i]; when empty they are derived from the Kubernetes names:
  // "<experts_statefulset>-<i>.<experts_service>:<expert_port>" for i < shards.
  std::vector<std::string> shard_addresses;
  std::string experts_service;
  std::string experts_statefulset;
  int32_t shards = 0;
  int expert_port = 50051;
  std::string transport = "grpc";
  // Mutual TLS to the shards from a directory with tls.crt, tls.key, ca.crt
  // (transport/grpc_tls.h); empty: plaintext.
  std::string expert_tls_dir;
  std::string http_address = "0.0.0.0";
  int http_port = 8000;  // 0: pick a free one
  int32_t device_limit = 0;
  int32_t top_k = 0;
  transport::WireDType wire_dtype = transport::WireDType::kBf16;
  SchedulerOptions scheduler;
  std::chrono::milliseconds health_period{1000};
  int threads = 0;  // the engine's pool (0: the cores this process may use)
  layers::WeightDType weight_dtype = layers::WeightDType::kAsStored;
};

class RouterServer {
 public:
  static StatusOr<std::unique_ptr<RouterServer>> Start(const RouterOptions& options);
  virtual ~RouterServer() = default;
  virtual int http_port() const = 0;
  virtual void Shutdown() = 0;
  virtual void Wait() = 0;
};

// The shard addresses RouterOptions implies (see shard_addresses). InvalidArgument when neither
// addresses nor the Kubernetes names with shards >= 1 are given, or the counts disagree.
StatusOr<std::vector<std::string>> ShardAddresses(const RouterOptions& options);

}  // namespace kubemoe::router
