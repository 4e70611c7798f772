// The expert-shard worker as a library: loads the routed experts its placement gives its shard
// (and nothing else of the model), serves kubemoe.v1.ExpertService, kubemoe.v1.WorkerInfoService
// and grpc.health.v1.Health over gRPC, and /metrics, /healthz, /readyz over HTTP. The
// kubemoe-worker binary is flags -> WorkerOptions -> WorkerServer::Start; tests start servers
// in-process on loopback.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "layers/linear_weight.h"

namespace kubemoe::worker {

struct WorkerOptions {
  std::string model_dir;           // Hugging Face checkpoint (config.json + safetensors)
  std::string placement_file;      // placement.yaml (placement/placement.h)
  uint64_t placement_version = 0;  // must equal the file's version (0 = take the file's)
  int32_t shard_index = 0;
  int32_t devices = 1;              // devices of this shard; must equal the placement's
  std::string device_type = "cpu";  // "cpu" (this build runs experts on CPU only)
  std::string transport = "grpc";   // "grpc" only in this build
  std::string grpc_address = "0.0.0.0";
  // Mutual TLS on the gRPC port from a directory with tls.crt, tls.key, ca.crt
  // (transport/grpc_tls.h): clients need a certificate signed by ca.crt. Empty: plaintext.
  std::string tls_dir;
  int grpc_port = 0;       // 0: the kernel picks one (see WorkerServer::grpc_port)
  int metrics_port = 0;    // 0: the kernel picks one; -1: no HTTP endpoints
  std::string model_name;  // for WorkerInfo (KUBEMOE_MODEL_NAME)
  int threads = 0;         // compute pool size, 0: the cores this process may use
  layers::WeightDType weight_dtype = layers::WeightDType::kAsStored;
};

// Checks what needs no file: device_type "cpu" and transport "grpc" (Unimplemented for "gpu" and
// "nccl", which this build lacks; InvalidArgument for other values) and devices >= 1.
// WorkerServer::Start calls it first; kubemoe-worker calls it before anything else.
Status CheckWorkerOptions(const WorkerOptions& options);

class WorkerServer {
 public:
  // Loads and starts serving. Errors (InvalidArgument / NotFound / Unavailable) say which file,
  // flag or port is wrong: e.g. a placement whose device count differs from `devices`, a shard
  // index outside the placement, a checkpoint whose config disagrees with the placement.
  static StatusOr<std::unique_ptr<WorkerServer>> Start(const WorkerOptions& options);
  virtual ~WorkerServer() = default;

  virtual int grpc_port() const = 0;
  virtual int metrics_port() const = 0;
  // Bytes of routed-expert weights held (as stored, or Q8_0), and the number of experts.
  virtual int64_t expert_bytes() const = 0;
  virtual int64_t num_experts() const = 0;
  // Stops accepting calls, lets calls in flight finish (bounded), stops the HTTP endpoints.
  virtual void Shutdown() = 0;
  // Blocks until Shutdown (from another thread or a signal handler's thread).
  virtual void Wait() = 0;
};

}  // namespace kubemoe::worker
