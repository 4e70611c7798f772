// kubemoe-worker: one expert shard. Loads the routed experts the placement gives this shard and
// serves them over gRPC until SIGTERM / SIGINT. The operator's StatefulSet (and `kubemoe up`)
// pass exactly these flags; see operator/api/workload_objects.cc.

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "common/mutex.h"
#include "common/shutdown_signal.h"
#include "worker/shard_index.h"
#include "worker/worker_server.h"

namespace {

using namespace kubemoe;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

// What the signal thread stops: nothing while loading (then it exits at once: there is nothing to
// drain yet), the server once it serves.
struct Running {
  Mutex mu;
  worker::WorkerServer* server KUBEMOE_GUARDED_BY(mu) = nullptr;
  bool stop_requested KUBEMOE_GUARDED_BY(mu) = false;
};

int Run(int argc, char** argv) {
  CLI::App app{"kubemoe-worker: serves the routed experts of one expert shard over gRPC"};
  worker::WorkerOptions o;
  std::string shard_index;
  o.grpc_port = 50051;
  o.metrics_port = 9090;
  app.add_option("--model-dir", o.model_dir, "Hugging Face checkpoint directory")->required();
  app.add_option("--placement", o.placement_file, "placement.yaml (from the operator's ConfigMap)")
      ->required();
  app.add_option("--placement-version", o.placement_version,
                 "placement version the pod was made for; must equal the file's (0 = the file's)")
      ->capture_default_str();
  app.add_option("--shard-index", shard_index,
                 "this shard (empty: $KUBEMOE_SHARD_INDEX, else the ordinal of $KUBEMOE_POD_NAME)");
  app.add_option("--devices", o.devices,
                 "devices of this shard (= the placement's devicesPerShard)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--device-type", o.device_type, "cpu (gpu is not in this build yet)")
      ->capture_default_str();
  app.add_option("--transport", o.transport, "grpc (nccl is not in this build yet)")
      ->capture_default_str();
  app.add_option("--tls-dir", o.tls_dir,
                 "mutual TLS on the gRPC port: directory with tls.crt, tls.key, ca.crt (a TLS Secret)");
  app.add_option("--grpc-port", o.grpc_port, "gRPC port (0 = pick a free one)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app.add_option("--metrics-port", o.metrics_port,
                 "port of /metrics, /healthz, /readyz (0 = pick a free one, -1 = none)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 65535));
  app.add_option("--listen-address", o.grpc_address,
                 "address for gRPC and HTTP (127.0.0.1 = loopback only)")
      ->capture_default_str();
  app.add_option("--threads", o.threads,
                 "compute threads, shared by the devices (0 = the cores this process may use)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  std::string weight_dtype = "as-stored";
  app.add_option("--weight-dtype", weight_dtype,
                 "routed experts as stored in the checkpoint (as-stored, bf16) or q8_0")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (StatusOr<layers::WeightDType> d = layers::ParseWeightDType(weight_dtype); d.ok()) {
    o.weight_dtype = *d;
  } else {
    std::cerr << "kubemoe-worker: --weight-dtype: " << d.status().message() << "\n";
    return 2;
  }

  if (Status s = worker::CheckWorkerOptions(o); !s.ok()) {
    std::cerr << "kubemoe-worker: " << s.ToString() << "\n";
    return 1;
  }
  StatusOr<int32_t> index =
      worker::ResolveShardIndex(shard_index, Env("KUBEMOE_SHARD_INDEX"), Env("KUBEMOE_POD_NAME"));
  if (!index.ok()) {
    std::cerr << "kubemoe-worker: " << index.status().message() << "\n";
    return 2;
  }
  o.shard_index = *index;
  o.model_name = Env("KUBEMOE_MODEL_NAME");

  // A thread turns SIGTERM/SIGINT into a Shutdown (common/shutdown_signal.h says why).
  if (Status s = InstallShutdownSignalHandler(); !s.ok()) {
    std::cerr << "kubemoe-worker: " << s.message() << "\n";
    return 1;
  }
  Running running;
  std::thread([&running] {
    const int sig = WaitForShutdownSignal();
    std::cerr << "kubemoe-worker: signal " << sig << ", shutting down" << std::endl;
    MutexLock lock(&running.mu);
    running.stop_requested = true;
    if (running.server == nullptr) std::_Exit(0);  // still loading: nothing in flight
    running.server->Shutdown();
  }).detach();

  StatusOr<std::unique_ptr<worker::WorkerServer>> server = worker::WorkerServer::Start(o);
  if (!server.ok()) {
    std::cerr << "kubemoe-worker: " << server.status().ToString() << "\n";
    return 1;
  }
  {
    MutexLock lock(&running.mu);
    running.server = server->get();
  }
  (*server)->Wait();
  // The signal thread holds running.mu until its Shutdown returns; wait for that before `running`
  // and the server go away.
  MutexLock lock(&running.mu);
  std::cerr << "kubemoe-worker: stopped" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "kubemoe-worker: fatal: " << e.what() << "\n";
    return 1;
  }
}
