#include "router/router_server.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "common/metrics.h"
#include "common/mutex.h"
#include "engine/model.h"
#include "engine/moe.h"
#include "model/tokenizer.h"
#include "placement/placement.h"
#include "router/chat_template.h"
#include "router/openai_http.h"
#include "router/remote_expert_executor.h"
#include "router/routing_setup.h"
#include "router/shard_health.h"
#include "transport/grpc_tls.h"

namespace kubemoe::router {
namespace {

namespace fs = std::filesystem;

StatusOr<placement::Placement> LoadPlacement(const RouterOptions& o) {
  std::ifstream in(o.placement_file);
  if (!in) return NotFound("cannot read the placement file " + o.placement_file);
  std::stringstream text;
  text << in.rdbuf();
  StatusOr<placement::Placement> p = placement::ParsePlacementYaml(text.str(), o.placement_file);
  if (!p.ok()) return p.status();
  if (o.placement_version != 0 && p->version != o.placement_version) {
    return InvalidArgument("--placement-version " + std::to_string(o.placement_version) +
                           " does not match " + o.placement_file + " (version " +
                           std::to_string(p->version) + ")");
  }
  return p;
}

class RouterServerImpl final : public RouterServer {
 public:
  int http_port() const override { return http_->port(); }

  void Shutdown() override {
    MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    if (http_) http_->Stop();
    if (scheduler_) scheduler_->Stop();
    done_.SignalAll();
  }

  void Wait() override {
    MutexLock lock(&mu_);
    while (!stopped_) done_.Wait(&mu_);
  }

  // The HTTP server stops first, then the scheduler (it ends every request still running), then
  // the members are destroyed in reverse order: executor and health before the model.
  ~RouterServerImpl() override { Shutdown(); }

  metrics::Registry registry_;
  std::unique_ptr<engine::Model> model_;
  std::unique_ptr<ShardHealth> health_;
  std::unique_ptr<RemoteExpertExecutor> executor_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<ChatTemplate> chat_template_;
  std::unique_ptr<OpenAIHttpServer> http_;

 private:
  Mutex mu_;
  CondVar done_;
  bool stopped_ KUBEMOE_GUARDED_BY(mu_) = false;
};

}  // namespace

StatusOr<std::vector<std::string>> ShardAddresses(const RouterOptions& o) {
  if (!o.shard_addresses.empty()) {
    if (o.shards > 0 && static_cast<int32_t>(o.shard_addresses.size()) != o.shards) {
      return InvalidArgument("--expert-addresses lists " +
                             std::to_string(o.shard_addresses.size()) + " shards, --shards says " +
                             std::to_string(o.shards));
    }
    return o.shard_addresses;
  }
  if (o.shards < 1 || o.experts_service.empty() || o.experts_statefulset.empty()) {
    return InvalidArgument(
        "give --expert-addresses, or --shards with --experts-service and --experts-statefulset");
  }
  std::vector<std::string> out;
  for (int32_t i = 0; i < o.shards; ++i) {
    // The StatefulSet's pods behind its headless Service: POD.SERVICE-DNS-NAME.
    out.push_back(o.experts_statefulset + "-" + std::to_string(i) + "." + o.experts_service + ":" +
                  std::to_string(o.expert_port));
  }
  return out;
}

namespace {

// Routed experts on expert-shard workers: routing over the placement, gRPC dispatch, health.
Status ConnectShards(const RouterOptions& o, RouterServerImpl& server) {
  StatusOr<std::vector<std::string>> addresses = ShardAddresses(o);
  if (!addresses.ok()) return addresses.status();
  StatusOr<placement::Placement> placement = LoadPlacement(o);
  if (!placement.ok()) return placement.status();
  if (placement->shards != static_cast<int32_t>(addresses->size())) {
    return InvalidArgument("the placement has " + std::to_string(placement->shards) +
                           " shards, the router was given " + std::to_string(addresses->size()));
  }
  StatusOr<std::vector<routing::RouterConfig>> routing =
      RouterConfigsFor(server.model_->config(), *placement, o.device_limit, o.top_k);
  if (!routing.ok()) return routing.status();
  KUBEMOE_RETURN_IF_ERROR(server.model_->ConfigureRouting(*routing, placement->version));
  StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      transport::GrpcChannelCredentials(o.expert_tls_dir);
  if (!credentials.ok()) return credentials.status();
  server.health_ = std::make_unique<ShardHealth>(*addresses, placement->version, o.health_period,
                                                 &server.registry_, *credentials);
  RemoteExecutorOptions ro;
  ro.shard_addresses = *addresses;
  ro.credentials = *credentials;
  ro.devices_per_shard = placement->devices_per_shard;
  ro.wire_dtype = o.wire_dtype;
  ro.dispatch_timeout = o.scheduler.step_timeout;
  ShardHealth* health = server.health_.get();
  StatusOr<std::unique_ptr<RemoteExpertExecutor>> executor = RemoteExpertExecutor::Create(
      ro, &server.registry_,
      [health](int32_t shard, const Status& why) { health->MarkFailed(shard, why); });
  if (!executor.ok()) return executor.status();
  server.executor_ = std::move(*executor);
  server.model_->SetExpertExecutor(server.executor_.get());
  health->Start();
  return Status::Ok();
}

// Every expert in this process (no placement): the single-process baseline, same HTTP and
// scheduler.
Status RouteInProcess(const RouterOptions& o, RouterServerImpl& server) {
  if (o.device_limit > 0) return InvalidArgument("--device-limit needs a placement (--placement)");
  if (o.top_k <= 0) return Status::Ok();  // Model::Load already routes as the model says
  routing::RouterConfig rc;
  rc.gate = engine::GateConfigFromModel(server.model_->config());
  rc.gate.top_k = o.top_k;
  return server.model_->ConfigureRouting(
      std::vector<routing::RouterConfig>(
          static_cast<size_t>(server.model_->config().num_hidden_layers), rc),
      0);
}

}  // namespace

StatusOr<std::unique_ptr<RouterServer>> RouterServer::Start(const RouterOptions& o) {
  if (o.transport != "grpc") {
    return InvalidArgument("--transport " + o.transport +
                           ": this build dispatches over gRPC only (NCCL needs the GPU backend)");
  }
  const bool distributed = !o.placement_file.empty();
  auto server = std::make_unique<RouterServerImpl>();
  KUBEMOE_RETURN_IF_ERROR(metrics::RegisterBuildInfo(server->registry_, "0.1.0"));
  engine::LoadOptions load;
  load.load_routed_experts = !distributed;
  load.threads = o.threads;
  load.weight_dtype = o.weight_dtype;
  StatusOr<std::unique_ptr<engine::Model>> model = engine::Model::Load(o.model_dir, load);
  if (!model.ok()) return model.status();
  server->model_ = std::move(*model);
  KUBEMOE_RETURN_IF_ERROR(distributed ? ConnectShards(o, *server) : RouteInProcess(o, *server));

  StatusOr<Tokenizer> tokenizer =
      Tokenizer::FromFile((fs::path(o.model_dir) / "tokenizer.json").string());
  if (!tokenizer.ok()) return tokenizer.status();
  server->tokenizer_ = std::make_unique<Tokenizer>(std::move(*tokenizer));

  ShardHealth* health = server->health_.get();
  Scheduler::ReadyCheck ready;
  if (health != nullptr) ready = [health](std::string* why) { return health->AllReady(why); };
  server->scheduler_ = std::make_unique<Scheduler>(server->model_.get(), o.scheduler,
                                                   &server->registry_, std::move(ready));
  server->scheduler_->Start();

  StatusOr<ChatTemplate> chat = ChatTemplate::FromModelDir(o.model_dir, *server->tokenizer_);
  if (!chat.ok()) return chat.status();
  server->chat_template_ = std::make_unique<ChatTemplate>(std::move(*chat));

  OpenAIHttpOptions http;
  http.host = o.http_address;
  http.port = o.http_port;
  http.served_model_name =
      o.served_model_name.empty() ? fs::path(o.model_dir).filename().string() : o.served_model_name;
  Scheduler* scheduler = server->scheduler_.get();
  metrics::Registry* registry = &server->registry_;
  http.get_routes["/healthz"] = [] { return http::HttpReply{200, "text/plain", "ok\n"}; };
  http.get_routes["/readyz"] = [scheduler] {
    std::string why;
    if (scheduler->Ready(&why)) return http::HttpReply{200, "text/plain", "ready\n"};
    return http::HttpReply{503, "text/plain", "not ready: " + why + "\n"};
  };
  http.get_routes["/metrics"] = [registry] {
    return http::HttpReply{200, metrics::kContentType, registry->Render()};
  };
  StatusOr<std::unique_ptr<OpenAIHttpServer>> listener = OpenAIHttpServer::Start(
      std::move(http), scheduler, server->tokenizer_.get(), server->chat_template_.get(), registry);
  if (!listener.ok()) return listener.status();
  server->http_ = std::move(*listener);
  return std::unique_ptr<RouterServer>(std::move(server));
}

}  // namespace kubemoe::router
