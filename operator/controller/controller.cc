#include "operator/controller/controller.h"

#include <iostream>

#include <nlohmann/json.hpp>

#include "common/mutex.h"
#include "operator/api/reconcile.h"

namespace kubemoe::op {

StatusOr<ControllerMetrics> ControllerMetrics::Register(metrics::Registry& registry) {
  ControllerMetrics m;
  auto counter = [&](const char* name, const char* help) -> StatusOr<metrics::Counter*> {
    auto family = registry.AddCounter(name, help);
    if (!family.ok()) return family.status();
    return (*family)->Unlabelled();
  };
  auto gauge = [&](const char* name, const char* help) -> StatusOr<metrics::Gauge*> {
    auto family = registry.AddGauge(name, help);
    if (!family.ok()) return family.status();
    return (*family)->Unlabelled();
  };
  auto total = registry.AddCounter("kubemoe_operator_reconcile_total",
                                   "Reconcile passes by result (success, requeue, error).", {"result"});
  if (!total.ok()) return total.status();
  m.reconcile_total = *total;
  for (const char* result : {"success", "requeue", "error"}) {
    if (auto child = m.reconcile_total->WithLabels({result}); !child.ok()) return child.status();
  }
#define KUBEMOE_SET(field, expr)      \
  do {                                \
    auto v = (expr);                  \
    if (!v.ok()) return v.status();   \
    m.field = *v;                     \
  } while (0)
  KUBEMOE_SET(reconcile_errors, counter("kubemoe_operator_reconcile_errors_total",
                                        "Reconcile passes that failed and were requeued."));
  auto duration = registry.AddHistogram("kubemoe_operator_reconcile_duration_seconds",
                                        "Time one reconcile pass took.");
  if (!duration.ok()) return duration.status();
  m.reconcile_duration = (*duration)->Unlabelled();
  KUBEMOE_SET(writes, counter("kubemoe_operator_api_writes_total",
                              "Objects applied and statuses written by reconcile passes."));
  KUBEMOE_SET(queue_depth, gauge("kubemoe_operator_workqueue_depth", "Keys ready in the work queue."));
  KUBEMOE_SET(queue_adds, counter("kubemoe_operator_workqueue_adds_total", "Keys queued."));
  KUBEMOE_SET(queue_retries, counter("kubemoe_operator_workqueue_retries_total",
                                     "Keys requeued with backoff after a failure."));
  KUBEMOE_SET(relists, counter("kubemoe_operator_informer_relists_total",
                               "Lists after the first (410 Gone or reconnect)."));
  KUBEMOE_SET(watch_errors, counter("kubemoe_operator_watch_errors_total",
                                    "Watch streams that failed or broke."));
  KUBEMOE_SET(leader, gauge("kubemoe_operator_leader", "1 while this replica leads, else 0."));
  KUBEMOE_SET(caches_synced, gauge("kubemoe_operator_caches_synced",
                                   "1 once every informer cache has been listed."));
#undef KUBEMOE_SET
  return m;
}

namespace {

std::string ManagedBySelector() { return std::string(kLabelManagedBy) + "=" + kManagedBy; }

}  // namespace

Controller::Controller(k8s::Client& client, ControllerOptions options, ControllerMetrics metrics,
                       Clock& clock)
    : client_(client), options_(std::move(options)), metrics_(metrics), clock_(clock),
      queue_(clock, options_.queue,
             WorkQueueMetrics{metrics.queue_depth, metrics.queue_adds, metrics.queue_retries}),
      events_(client, clock, options_.identity) {
  auto informer_options = [&](const k8s::Resource& resource, std::string selector) {
    InformerOptions o;
    o.resource = resource;
    o.namespace_ = options_.namespace_;
    o.label_selector = std::move(selector);
    o.watch_timeout = options_.watch_timeout;
    o.relists = metrics_.relists;
    o.watch_errors = metrics_.watch_errors;
    return o;
  };
  models_ = std::make_unique<Informer>(client_, informer_options(k8s::MoEModels(), ""),
                                       [this](const nlohmann::json& o) { OnModel(o); });
  ReconcilerCaches caches;
  caches.models = models_.get();
  for (const k8s::Resource* r : {&k8s::ConfigMaps(), &k8s::Services(), &k8s::StatefulSets(),
                                 &k8s::Deployments(), &k8s::PodDisruptionBudgets(),
                                 &k8s::NetworkPolicies()}) {
    owned_.push_back(std::make_unique<Informer>(client_, informer_options(*r, ManagedBySelector()),
                                                [this](const nlohmann::json& o) { OnOwned(o); }));
    caches.owned[r->kind] = owned_.back().get();
  }
  reconciler_ = std::make_unique<Reconciler>(client_, std::move(caches), events_, clock_);
}

Controller::~Controller() { Stop(); }

void Controller::OnModel(const nlohmann::json& object) { queue_.Add(Informer::KeyOf(object)); }

void Controller::OnOwned(const nlohmann::json& object) {
  auto meta_it = object.find("metadata");
  if (meta_it == object.end() || !meta_it->is_object()) return;  // the informer refuses these
  const nlohmann::json& meta = *meta_it;
  auto refs = meta.find("ownerReferences");
  if (refs == meta.end() || !refs->is_array()) return;
  for (const nlohmann::json& ref : *refs) {
    if (!ref.is_object() || ref.value("kind", "") != kKind || !ref.value("controller", false)) continue;
    std::string api_version = ref.value("apiVersion", "");
    if (api_version.rfind(std::string(kGroup) + "/", 0) != 0) continue;
    queue_.Add(meta.value("namespace", "") + "/" + ref.value("name", ""));
  }
}

void Controller::StartInformers() {
  models_->Start();
  for (auto& informer : owned_) informer->Start();
}

bool Controller::CachesSynced() const {
  if (!models_->HasSynced()) return false;
  for (const auto& informer : owned_) {
    if (!informer->HasSynced()) return false;
  }
  return true;
}

bool Controller::WaitForCacheSync(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left = [&] {
    return std::max(std::chrono::milliseconds(0), std::chrono::duration_cast<std::chrono::milliseconds>(
                                                      deadline - std::chrono::steady_clock::now()));
  };
  bool synced = models_->WaitForSync(left());
  for (auto& informer : owned_) synced = informer->WaitForSync(left()) && synced;
  if (synced && metrics_.caches_synced != nullptr) metrics_.caches_synced->Set(1);
  return synced;
}

void Controller::ResyncAll() {
  for (const ObjectPtr& model : models_->List()) queue_.Add(Informer::KeyOf(*model));
}

void Controller::StartWorkers() {
  if (workers_started_.exchange(true)) return;
  for (int i = 0; i < std::max(options_.workers, 1); ++i) workers_.emplace_back([this] { Work(); });
  resync_ = std::thread([this] { ResyncLoop(); });
}

void Controller::ResyncLoop() {
  if (options_.resync_period.count() <= 0) return;
  while (true) {
    {
      const auto deadline = std::chrono::steady_clock::now() + options_.resync_period;
      MutexLock lock(&mu_);
      while (!stopped_ && cv_.WaitUntil(&mu_, deadline)) {
      }
      if (stopped_) return;
    }
    ResyncAll();
  }
}

void Controller::Work() {
  while (std::optional<std::string> key = queue_.Get()) {
    auto start = std::chrono::steady_clock::now();
    ReconcileResult result = reconciler_->Reconcile(*key);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (metrics_.reconcile_duration != nullptr) metrics_.reconcile_duration->Observe(seconds);
    if (metrics_.writes != nullptr) metrics_.writes->Inc(result.writes);
    const char* label = "success";
    if (result.outcome == ReconcileResult::Outcome::kOk) {
      queue_.Forget(*key);
      if (result.requeue_after.count() > 0) queue_.AddAfter(*key, result.requeue_after);
    } else {
      label = result.outcome == ReconcileResult::Outcome::kRequeue ? "requeue" : "error";
      if (metrics_.reconcile_errors != nullptr) metrics_.reconcile_errors->Inc();
      std::cerr << "reconcile " << *key << " failed (retry " << queue_.NumRequeues(*key) + 1
                << "): " << result.message << "\n";
      queue_.AddRateLimited(*key);
    }
    if (metrics_.reconcile_total != nullptr) {
      if (auto child = metrics_.reconcile_total->WithLabels({label}); child.ok()) (*child)->Inc();
    }
    queue_.Done(*key);
  }
}

void Controller::Stop() {
  if (stopped_.exchange(true)) return;
  {
    MutexLock lock(&mu_);
    cv_.SignalAll();
  }
  queue_.ShutDown();
  for (auto& t : workers_) t.join();
  if (resync_.joinable()) resync_.join();
  models_->Stop();
  for (auto& informer : owned_) informer->Stop();
}

}  // namespace kubemoe::op
