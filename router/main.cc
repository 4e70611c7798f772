// kubemoe-router: flags (exactly those the operator writes into the router Deployment, plus a few
// for local runs) -> RouterOptions -> RouterServer. SIGTERM/SIGINT shut it down gracefully.
#include <CLI/CLI.hpp>
#include <iostream>
#include <sstream>
#include <thread>

#include "common/shutdown_signal.h"
#include "router/router_server.h"

namespace {

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using kubemoe::router::RouterOptions;
  CLI::App app{
      "kubemoe-router: the dense part of a DeepSeek-V2 model, serving the OpenAI API and "
      "dispatching routed experts to expert-shard workers"};
  RouterOptions o;
  std::string addresses, wire = "bf16";
  int max_queue_delay_ms = 5, dispatch_timeout_ms = 30000, health_period_ms = 1000;
  int request_timeout_s = 600;
  uint64_t placement_version = 0;
  app.add_option("--model-dir", o.model_dir, "checkpoint directory")->required();
  app.add_option("--served-model-name", o.served_model_name, "OpenAI model name");
  app.add_option("--placement", o.placement_file,
                 "placement.yaml (without it every expert runs in this process)");
  app.add_option("--placement-version", placement_version, "expected placement version");
  app.add_option("--experts-service", o.experts_service, "headless Service DNS name of the shards");
  app.add_option("--experts-statefulset", o.experts_statefulset, "StatefulSet of the shards");
  app.add_option("--shards", o.shards, "number of expert shards");
  app.add_option("--expert-port", o.expert_port, "gRPC port of the shards")->capture_default_str();
  app.add_option("--expert-addresses", addresses,
                 "host:port of each shard, comma-separated (instead of the Kubernetes names)");
  app.add_option("--expert-tls-dir", o.expert_tls_dir,
                 "mutual TLS to the shards: directory with tls.crt, tls.key, ca.crt (a TLS Secret)");
  app.add_option("--transport", o.transport, "grpc (nccl needs the GPU backend)")
      ->capture_default_str();
  app.add_option("--http-address", o.http_address, "listen address")->capture_default_str();
  app.add_option("--http-port", o.http_port, "HTTP port")->capture_default_str();
  app.add_option("--max-batch-size", o.scheduler.max_batch_size, "sequences per step")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-batch-tokens", o.scheduler.max_batch_tokens, "token rows per step")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-queue-delay-ms", max_queue_delay_ms, "wait to fill the first step")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-queue", o.scheduler.max_queue, "waiting requests before 429")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--kv-cache-tokens", o.scheduler.kv_cache_tokens,
                 "latent KV cache budget in tokens (0: max-batch-size x context)");
  std::string kv_cache_dtype = "f32";
  app.add_option("--kv-cache-dtype", kv_cache_dtype, "latent KV cache rows: f32 (exact) or bf16")
      ->capture_default_str();
  app.add_option("--top-k", o.top_k, "experts per token (0: the model's)");
  app.add_option("--device-limit", o.device_limit,
                 "route each token to at most M devices (0: off)");
  app.add_option("--device-limit-kl-sample-rate", o.scheduler.device_limit_kl_sample_rate,
                 "with --device-limit: fraction of requests shadowed model-faithfully to "
                 "estimate the limit's KL cost (0: off)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--wire-dtype", wire, "hidden states on the wire: bf16 or f32")
      ->capture_default_str();
  app.add_option("--dispatch-timeout-ms", dispatch_timeout_ms, "deadline of one layer's dispatch")
      ->capture_default_str();
  app.add_option("--request-timeout-s", request_timeout_s, "deadline of a whole request")
      ->capture_default_str();
  app.add_option("--health-period-ms", health_period_ms, "shard health probe period")
      ->capture_default_str();
  app.add_option("--threads", o.threads,
                 "threads of the dense forward pass (0 = the cores this process may use)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  std::string weight_dtype = "as-stored";
  app.add_option("--weight-dtype", weight_dtype,
                 "large matrices as stored in the checkpoint (as-stored, bf16) or q8_0")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  auto weights = kubemoe::layers::ParseWeightDType(weight_dtype);
  if (!weights.ok()) {
    std::cerr << "kubemoe-router: --weight-dtype: " << weights.status().message() << std::endl;
    return 2;
  }
  o.weight_dtype = *weights;
  auto kv_dtype = kubemoe::engine::ParseKvCacheDType(kv_cache_dtype);
  if (!kv_dtype.ok()) {
    std::cerr << "kubemoe-router: --kv-cache-dtype: " << kv_dtype.status().message() << std::endl;
    return 2;
  }
  o.scheduler.kv_cache_dtype = *kv_dtype;

  o.placement_version = placement_version;
  o.shard_addresses = SplitComma(addresses);
  o.scheduler.max_queue_delay = std::chrono::milliseconds(max_queue_delay_ms);
  o.scheduler.step_timeout = std::chrono::milliseconds(dispatch_timeout_ms);
  o.scheduler.request_timeout = std::chrono::seconds(request_timeout_s);
  o.health_period = std::chrono::milliseconds(health_period_ms);
  auto dtype = kubemoe::transport::ParseWireDType(wire);
  if (!dtype.ok()) {
    std::cerr << "kubemoe-router: --wire-dtype: " << dtype.status().message() << std::endl;
    return 2;
  }
  o.wire_dtype = *dtype;

  // A thread turns SIGTERM/SIGINT into a Shutdown (common/shutdown_signal.h says why).
  if (kubemoe::Status s = kubemoe::InstallShutdownSignalHandler(); !s.ok()) {
    std::cerr << "kubemoe-router: " << s.message() << std::endl;
    return 1;
  }
  auto server = kubemoe::router::RouterServer::Start(o);
  if (!server.ok()) {
    std::cerr << "kubemoe-router: " << server.status().message() << std::endl;
    return 1;
  }
  std::cerr << "kubemoe-router: serving on " << o.http_address << ":" << (*server)->http_port()
            << std::endl;
  std::thread waiter([&] {
    const int sig = kubemoe::WaitForShutdownSignal();
    std::cerr << "kubemoe-router: signal " << sig << ", shutting down" << std::endl;
    (*server)->Shutdown();
  });
  (*server)->Wait();
  waiter.detach();
  return 0;
}
