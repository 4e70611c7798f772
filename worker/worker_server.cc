// WorkerServer::Start: options checked, placement and config cross-checked, only this shard's
// experts loaded, then gRPC (expert, info, health) and HTTP (/metrics, /healthz, /readyz).
#include "worker/worker_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "common/http_endpoints.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "common/thread_pool.h"
#include "kernels/cpu/weight_gemm.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "placement/model_match.h"
#include "placement/placement.h"
#include "transport/grpc_tls.h"
#include "worker/compute_queue.h"
#include "worker/expert_batch.h"
#include "worker/expert_service.h"
#include "worker/process_memory.h"
#include "worker/shard_experts.h"
#include "worker/worker_info_service.h"
#include "worker/worker_metrics.h"

#ifndef KUBEMOE_VERSION
#define KUBEMOE_VERSION "unknown"
#endif

namespace kubemoe::worker {
namespace {

// A V2 token is 10 KiB in bf16, so a prefill batch passes gRPC's 4 MiB default quickly.
constexpr int kMaxMessageBytes = 256 << 20;
// How long Shutdown lets calls in flight finish before cancelling them.
constexpr auto kShutdownGrace = std::chrono::seconds(5);
constexpr char kExpertServiceName[] = "kubemoe.v1.ExpertService";

std::string MiB(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

}  // namespace

Status CheckWorkerOptions(const WorkerOptions& o) {
  if (o.device_type == "gpu") {
    return Status(StatusCode::kUnimplemented,
                  "--device-type=gpu: this build has no GPU expert backend yet; run the worker "
                  "with --device-type=cpu (spec.experts.deviceType: cpu)");
  }
  if (o.device_type != "cpu") {
    return InvalidArgument("--device-type=" + o.device_type + ": use cpu (or gpu)");
  }
  if (o.transport == "nccl") {
    return Status(StatusCode::kUnimplemented,
                  "--transport=nccl: this build has no NCCL transport yet; use --transport=grpc "
                  "(spec.transport: grpc)");
  }
  if (o.transport != "grpc") {
    return InvalidArgument("--transport=" + o.transport + ": use grpc (or nccl)");
  }
  if (o.devices < 1)
    return InvalidArgument("--devices=" + std::to_string(o.devices) + ": need >= 1");
  return Status::Ok();
}

namespace {

StatusOr<placement::Placement> LoadPlacement(const WorkerOptions& o) {
  std::ifstream in(o.placement_file, std::ios::binary);
  if (!in) return NotFound("cannot read the placement file " + o.placement_file);
  std::stringstream text;
  text << in.rdbuf();
  StatusOr<placement::Placement> p = placement::ParsePlacementYaml(text.str(), o.placement_file);
  if (!p.ok()) return p.status();
  if (o.placement_version != 0 && o.placement_version != p->version) {
    return FailedPrecondition("--placement-version=" + std::to_string(o.placement_version) +
                              " but " + o.placement_file + " holds placement version " +
                              std::to_string(p->version) +
                              " (the ConfigMap and the pod template disagree; wait for the "
                              "rollout or fix the flag)");
  }
  if (o.devices != p->devices_per_shard) {
    return InvalidArgument("--devices=" + std::to_string(o.devices) + " but " + o.placement_file +
                           " has devicesPerShard " + std::to_string(p->devices_per_shard));
  }
  return p;
}

class WorkerServerImpl final : public WorkerServer {
 public:
  ~WorkerServerImpl() override { Shutdown(); }

  int grpc_port() const override { return grpc_port_; }
  int metrics_port() const override { return http_ ? http_->port() : -1; }
  int64_t expert_bytes() const override { return store_.Bytes(); }
  int64_t num_experts() const override { return static_cast<int64_t>(store_.size()); }

  void Shutdown() override {
    {
      MutexLock lock(&mu_);
      if (stopping_) {
        while (!stopped_) cv_.Wait(&mu_);
        return;
      }
      stopping_ = true;
    }
    ready_ = false;
    if (server_) {
      server_->GetHealthCheckService()->SetServingStatus(false);
      server_->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
      server_->Wait();
    }
    if (queue_) queue_->Stop();  // after the server: queued calls must still be finished
    http_.reset();
    MutexLock lock(&mu_);
    stopped_ = true;
    cv_.SignalAll();
  }

  void Wait() override {
    MutexLock lock(&mu_);
    while (!stopped_) cv_.Wait(&mu_);
  }

  Status Init(const WorkerOptions& o);

 private:
  Status StartGrpc(const WorkerOptions& o);
  Status StartHttp(const WorkerOptions& o);

  ModelConfig config_;
  placement::Placement placement_;
  ShardExperts experts_;
  layers::ExpertStore store_;
  metrics::Registry registry_;
  std::unique_ptr<WorkerMetrics> metrics_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<ExpertBatchRunner> runner_;
  std::unique_ptr<ComputeQueue> queue_;
  std::unique_ptr<ExpertService> expert_service_;
  std::unique_ptr<WorkerInfoService> info_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<http::HttpEndpoints> http_;
  int grpc_port_ = 0;
  std::atomic<bool> ready_{false};

  Mutex mu_;
  CondVar cv_;
  bool stopping_ KUBEMOE_GUARDED_BY(mu_) = false;
  bool stopped_ KUBEMOE_GUARDED_BY(mu_) = false;
};

Status WorkerServerImpl::Init(const WorkerOptions& o) {
  KUBEMOE_RETURN_IF_ERROR(CheckWorkerOptions(o));
  // Certificates are checked before the (possibly long) expert load, so a bad Secret fails fast.
  if (!o.tls_dir.empty()) KUBEMOE_RETURN_IF_ERROR(transport::CheckTlsDir(o.tls_dir));
  StatusOr<ModelConfig> config = LoadModelConfig(o.model_dir);
  if (!config.ok()) return config.status();
  config_ = std::move(*config);
  if (!config_.is_moe()) return InvalidArgument(config_.source + " describes a dense model");
  StatusOr<placement::Placement> p = LoadPlacement(o);
  if (!p.ok()) return p.status();
  placement_ = std::move(*p);
  KUBEMOE_RETURN_IF_ERROR(
      placement::CheckPlacementMatchesModel(placement_, o.placement_file, config_));
  StatusOr<ShardExperts> experts = ShardExperts::Build(placement_, config_, o.shard_index);
  if (!experts.ok()) return experts.status();
  experts_ = std::move(*experts);

  {  // The experts keep the checkpoint mapped (read in place) when kept as stored.
    StatusOr<Checkpoint> ckpt = Checkpoint::Open(o.model_dir);
    if (!ckpt.ok()) return ckpt.status();
    StatusOr<layers::ExpertStore> store = LoadShardExperts(
        std::make_shared<const Checkpoint>(std::move(*ckpt)), config_, experts_, o.weight_dtype);
    if (!store.ok()) return store.status();
    store_ = std::move(*store);
    std::cerr << "kubemoe-worker: shard " << o.shard_index << " of " << placement_.shards
              << ", placement version " << placement_.version << ": loaded " << store_.size()
              << " routed experts over " << experts_.moe_layers().size() << " MoE layers ("
              << MiB(store_.Bytes()) << " of " << layers::WeightDTypeName(o.weight_dtype)
              << " weights); " << MiB(MappedFileBytes(o.model_dir))
              << " of checkpoint files mapped while loading" << std::endl;
  }
  std::cerr << "kubemoe-worker: resident set after loading " << MiB(ResidentBytes()) << std::endl;

  StatusOr<WorkerMetrics> m =
      WorkerMetrics::Register(registry_, experts_, store_.Bytes(), KUBEMOE_VERSION);
  if (!m.ok()) return m.status();
  metrics_ = std::make_unique<WorkerMetrics>(std::move(*m));
  // The devices' compute threads take turns on one pool; OpenBLAS adds no threads of its own.
  pool_ = std::make_unique<ThreadPool>(o.threads);
  cpu::SetBlasThreads(1);
  runner_ = std::make_unique<ExpertBatchRunner>(placement_.version, config_.hidden_size,
                                                static_cast<int32_t>(config_.n_routed_experts),
                                                experts_, store_, *pool_);
  queue_ = std::make_unique<ComputeQueue>(o.devices);  // one compute thread per device
  expert_service_ = std::make_unique<ExpertService>(*runner_, *queue_, *metrics_);
  std::string model_name = o.model_name;
  if (model_name.empty()) {  // no KUBEMOE_MODEL_NAME (e.g. run by hand): the checkpoint's name
    std::filesystem::path dir(o.model_dir);
    if (!dir.has_filename()) dir = dir.parent_path();  // "models/tiny/" -> "models/tiny"
    model_name = dir.filename().string();
  }
  info_service_ = std::make_unique<WorkerInfoService>(
      WorkerIdentity{model_name, placement_.version, KUBEMOE_VERSION}, experts_, *metrics_);
  KUBEMOE_RETURN_IF_ERROR(StartGrpc(o));
  KUBEMOE_RETURN_IF_ERROR(StartHttp(o));
  ready_ = true;
  std::cerr << "kubemoe-worker: serving gRPC on " << o.grpc_address << ":" << grpc_port_
            << (http_ ? ", HTTP on port " + std::to_string(http_->port()) : std::string())
            << std::endl;
  return Status::Ok();
}

Status WorkerServerImpl::StartGrpc(const WorkerOptions& o) {
  grpc::EnableDefaultHealthCheckService(true);
  const bool v6 = o.grpc_address.find(':') != std::string::npos;
  const std::string address =
      (v6 ? "[" + o.grpc_address + "]" : o.grpc_address) + ":" + std::to_string(o.grpc_port);
  StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      transport::GrpcServerCredentials(o.tls_dir);
  if (!credentials.ok()) return credentials.status();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, *credentials, &grpc_port_);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.RegisterService(expert_service_.get());
  builder.RegisterService(info_service_.get());
  server_ = builder.BuildAndStart();
  if (!server_ || grpc_port_ == 0) {
    server_.reset();
    return Unavailable("cannot listen for gRPC on " + address + " (port in use?)");
  }
  // Loaded before the server started, so both are SERVING from the first health check.
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus("", true);
  health->SetServingStatus(kExpertServiceName, true);
  return Status::Ok();
}

Status WorkerServerImpl::StartHttp(const WorkerOptions& o) {
  if (o.metrics_port < 0) return Status::Ok();
  std::map<std::string, http::HttpHandler> routes = {
      {"/metrics",
       [this] {
         return http::HttpReply{200, metrics::kContentType, registry_.Render()};
       }},
      {"/healthz",
       [] {
         return http::HttpReply{200, "text/plain", "ok\n"};
       }},
      {"/readyz", [this] {
         return ready_ ? http::HttpReply{200, "text/plain", "ok\n"}
                       : http::HttpReply{503, "text/plain", "shutting down\n"};
       }}};
  StatusOr<std::unique_ptr<http::HttpEndpoints>> h =
      http::HttpEndpoints::Start(o.metrics_port, std::move(routes), o.grpc_address);
  if (!h.ok()) return h.status();
  http_ = std::move(*h);
  return Status::Ok();
}

}  // namespace

StatusOr<std::unique_ptr<WorkerServer>> WorkerServer::Start(const WorkerOptions& options) {
  auto server = std::make_unique<WorkerServerImpl>();
  Status s = server->Init(options);
  if (!s.ok()) return s;
  return std::unique_ptr<WorkerServer>(std::move(server));
}

}  // namespace kubemoe::worker
