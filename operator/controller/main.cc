// kubemoe-operator: reconciles MoEModel custom resources into ConfigMaps, Services, a StatefulSet
// of expert shards, a router Deployment and a PodDisruptionBudget. See operator/README.md.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <random>
#include <thread>

#include <CLI/CLI.hpp>

#include "common/http_endpoints.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "operator/controller/controller.h"
#include "operator/controller/leader_election.h"
#include "operator/k8s/client.h"

namespace {

using namespace kubemoe;

// Set by the signal thread or a lost Lease; main waits on it.
struct StopSignal {
  Mutex mu;
  CondVar cv;
  bool stop KUBEMOE_GUARDED_BY(mu) = false;
  int exit_code KUBEMOE_GUARDED_BY(mu) = 0;
  void Raise(int code) {
    MutexLock lock(&mu);
    if (!stop) exit_code = code;
    stop = true;
    cv.SignalAll();
  }
  bool WaitFor(std::chrono::milliseconds d) {
    const auto deadline = std::chrono::steady_clock::now() + d;
    MutexLock lock(&mu);
    while (!stop && cv.WaitUntil(&mu, deadline)) {
    }
    return stop;
  }
  bool stopped() {
    MutexLock lock(&mu);
    return stop;
  }
  int code() {
    MutexLock lock(&mu);
    return exit_code;
  }
};

std::string DefaultIdentity() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "unknown");
  std::mt19937_64 rng(std::random_device{}());
  char suffix[24];
  std::snprintf(suffix, sizeof(suffix), "_%08llx", static_cast<unsigned long long>(rng() & 0xffffffffu));
  return std::string(host) + suffix;
}

// A namespace name (RFC 1123 label) or empty. Catches a flag taken as a value: CLI11 reads
// "--namespace=" as taking the next argument, e.g. "--leader-elect=true".
const CLI::Validator kNamespaceName(
    [](std::string& value) -> std::string {
      bool ok = value.size() <= 63 && (value.empty() || (std::isalnum(static_cast<unsigned char>(value.front())) &&
                                                         std::isalnum(static_cast<unsigned char>(value.back()))));
      for (char c : value) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
      return ok ? std::string() : "\"" + value + "\" is not a namespace name (lower-case letters, digits, '-')";
    },
    "NAMESPACE");

int Run(int argc, char** argv) {
  CLI::App app{"kubemoe-operator: reconciles MoEModel resources (kubemoe.io/v1alpha1)"};
  std::string kubeconfig, ns, le_namespace, le_id = "kubemoe-operator", identity;
  bool leader_elect = false;
  int metrics_port = 8080, health_port = 8081, workers = 2, resync_s = 300, watch_timeout_s = 300;
  int lease_s = 15, renew_s = 10, retry_s = 2;
  app.add_option("--kubeconfig", kubeconfig, "kubeconfig path list (empty = in-cluster, else $KUBECONFIG)");
  app.add_option("--namespace", ns, "namespace to watch (empty = all)")->check(kNamespaceName);
  app.add_flag("--leader-elect", leader_elect, "run leader election with a coordination.k8s.io Lease");
  app.add_option("--leader-election-namespace", le_namespace,
                 "namespace of the Lease (default: the kubeconfig/service-account namespace)")
      ->check(kNamespaceName);
  app.add_option("--leader-election-id", le_id, "name of the Lease")->capture_default_str();
  app.add_option("--leader-election-identity", identity, "holder identity (default: hostname_random)");
  app.add_option("--lease-duration", lease_s, "Lease duration, seconds")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--renew-deadline", renew_s, "renew deadline, seconds")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--retry-period", retry_s, "leader election retry period, seconds")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--metrics-port", metrics_port, "port of /metrics (0 = pick a free one)")->capture_default_str()->check(CLI::Range(0, 65535));
  app.add_option("--health-port", health_port, "port of /healthz and /readyz (0 = pick a free one)")->capture_default_str()->check(CLI::Range(0, 65535));
  app.add_option("--workers", workers, "concurrent reconcile workers")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--resync-period", resync_s, "seconds between re-queues of every MoEModel (0 = never)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--watch-timeout", watch_timeout_s, "server-side watch timeout, seconds")->capture_default_str()->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  if (leader_elect && !(lease_s > renew_s && renew_s > retry_s)) {
    std::cerr << "kubemoe-operator: need --lease-duration > --renew-deadline > --retry-period\n";
    return 2;
  }

  // Signals go to one thread that turns them into a stop request.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  StopSignal stop;
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    std::cerr << "kubemoe-operator: signal " << sig << ", shutting down\n";
    stop.Raise(0);
  });
  signal_thread.detach();

  StatusOr<k8s::ClientConfig> config = k8s::LoadClientConfig(kubeconfig);
  if (!config.ok()) {
    std::cerr << "kubemoe-operator: " << config.status().ToString() << "\n";
    return 1;
  }
  StatusOr<std::unique_ptr<k8s::Client>> client = k8s::Client::Create(*config);
  if (!client.ok()) {
    std::cerr << "kubemoe-operator: " << client.status().ToString() << "\n";
    return 1;
  }
  std::cerr << "kubemoe-operator: API server " << config->server << " (" << config->source << ")\n";

  metrics::Registry registry;
  if (Status s = metrics::RegisterBuildInfo(registry, "0.1.0"); !s.ok()) {
    std::cerr << "kubemoe-operator: " << s.ToString() << "\n";
    return 1;
  }
  StatusOr<op::ControllerMetrics> controller_metrics = op::ControllerMetrics::Register(registry);
  if (!controller_metrics.ok()) {
    std::cerr << "kubemoe-operator: " << controller_metrics.status().ToString() << "\n";
    return 1;
  }
  if (identity.empty()) identity = DefaultIdentity();

  op::ControllerOptions options;
  options.namespace_ = ns;
  options.workers = workers;
  options.resync_period = std::chrono::seconds(resync_s);
  options.watch_timeout = std::chrono::seconds(watch_timeout_s);
  options.identity = identity;
  op::Controller controller(**client, options, *controller_metrics);

  std::unique_ptr<op::LeaseStore> lease_store;
  std::unique_ptr<op::LeaderElector> elector;
  if (leader_elect) {
    if (le_namespace.empty()) le_namespace = config->namespace_.empty() ? "default" : config->namespace_;
    lease_store = op::MakeApiLeaseStore(**client, le_namespace, le_id);
    op::LeaderElectionConfig le;
    le.identity = identity;
    le.lease_duration = std::chrono::seconds(lease_s);
    le.renew_deadline = std::chrono::seconds(renew_s);
    le.retry_period = std::chrono::seconds(retry_s);
    elector = std::make_unique<op::LeaderElector>(*lease_store, op::RealClock(), le);
  }

  std::map<std::string, http::HttpHandler> health_routes = {
      {"/healthz", [] { return http::HttpReply{200, "text/plain", "ok\n"}; }},
      {"/readyz", [&] {
         bool synced = controller.CachesSynced();
         bool election_ok = !elector || elector->IsLeader() || elector->Healthy();
         if (synced && election_ok) return http::HttpReply{200, "text/plain", "ok\n"};
         return http::HttpReply{
             503, "text/plain",
             std::string(synced ? "" : "caches not synced\n") +
                 (election_ok ? "" : "leader election cannot reach the Lease\n")};
       }}};
  std::map<std::string, http::HttpHandler> metrics_routes = {
      {"/metrics", [&] { return http::HttpReply{200, metrics::kContentType, registry.Render()}; }}};
  if (health_port == metrics_port && health_port != 0) {
    health_routes.insert(metrics_routes.begin(), metrics_routes.end());
  }
  auto health = http::HttpEndpoints::Start(health_port, health_routes);
  if (!health.ok()) {
    std::cerr << "kubemoe-operator: health endpoints: " << health.status().ToString() << "\n";
    return 1;
  }
  std::unique_ptr<http::HttpEndpoints> metrics_server;
  if (!(health_port == metrics_port && health_port != 0)) {
    auto m = http::HttpEndpoints::Start(metrics_port, metrics_routes);
    if (!m.ok()) {
      std::cerr << "kubemoe-operator: metrics endpoint: " << m.status().ToString() << "\n";
      return 1;
    }
    metrics_server = std::move(*m);
  }
  std::cout << "health port " << (*health)->port() << "\n"
            << "metrics port " << (metrics_server ? metrics_server->port() : (*health)->port()) << "\n"
            << std::flush;

  controller.StartInformers();
  // Guards the start of the workers against a shutdown that has begun (controller.Stop() must
  // not race with StartWorkers()).
  Mutex start_mu;
  bool shutting_down = false;
  // With leader election, on a thread of the elector's own while it renews the Lease; returns
  // within a second of a stop request (the elector waits for it before releasing the Lease).
  auto start_leading = [&] {
    while (!controller.WaitForCacheSync(std::chrono::seconds(1))) {
      if (stop.stopped()) return;
    }
    MutexLock lock(&start_mu);
    if (shutting_down) return;
    controller_metrics->leader->Set(1);
    controller.ResyncAll();
    controller.StartWorkers();
    std::cerr << "kubemoe-operator: " << identity << " is reconciling\n";
  };
  // A lost Lease means another replica may already be reconciling: stop every write at once by
  // exiting (as client-go's users do); the Deployment restarts us and we campaign afresh.
  // Workers are not joined: one could sit in a request for the client's full timeout.
  auto stop_leading = [&](bool lost) {
    controller_metrics->leader->Set(0);
    if (!lost) return;
    std::cerr << "kubemoe-operator: " << identity << " lost the Lease " << le_namespace << "/"
              << le_id << "; exiting so that a restart campaigns afresh" << std::endl;
    std::cout.flush();
    std::_Exit(1);
  };

  std::thread election_thread;
  if (elector) {
    std::cerr << "kubemoe-operator: " << identity << " campaigning for Lease " << le_namespace
              << "/" << le_id << "\n";
    election_thread = std::thread([&] {
      if (!elector->Run(start_leading, stop_leading)) stop.Raise(1);  // not reached: exited
    });
  } else {
    start_leading();
  }

  while (!stop.WaitFor(std::chrono::seconds(1))) {
  }
  // Workers first (no write after the Lease is released), then the Lease, then the informers.
  {
    MutexLock lock(&start_mu);
    shutting_down = true;
  }
  controller.Stop();
  if (elector) {
    elector->Stop();
    election_thread.join();
  }
  std::cerr << "kubemoe-operator: stopped\n";
  return stop.code();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "kubemoe-operator: fatal: " << e.what() << "\n";
    return 1;
  }
}
