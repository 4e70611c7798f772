// The MoEModel controller: informers for MoEModels and the kinds it owns (filtered by the
// managed-by label), a rate-limited work queue of MoEModel keys fed by their events (owned
// objects map to their controlling owner), worker threads running the Reconciler, and a periodic
// resync that re-queues every MoEModel.
//
// Informers start at once so a standby replica has warm caches; workers start only when told
// (when this replica leads).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "common/mutex.h"
#include "common/status.h"
#include "operator/controller/clock.h"
#include "operator/controller/event_recorder.h"
#include "operator/controller/informer.h"
#include "operator/controller/reconciler.h"
#include "operator/controller/workqueue.h"

namespace kubemoe::op {

struct ControllerOptions {
  std::string namespace_;  // "" = all namespaces
  int workers = 2;
  std::chrono::seconds resync_period{300};  // 0 = never
  std::chrono::seconds watch_timeout{300};
  WorkQueueOptions queue;
  std::string identity = "kubemoe-operator";  // Events' reportingInstance
};

// The controller's metric families, registered once per Registry.
struct ControllerMetrics {
  metrics::CounterFamily* reconcile_total = nullptr;  // {result}
  metrics::Counter* reconcile_errors = nullptr;
  metrics::Histogram* reconcile_duration = nullptr;
  metrics::Counter* writes = nullptr;
  metrics::Gauge* queue_depth = nullptr;
  metrics::Counter* queue_adds = nullptr;
  metrics::Counter* queue_retries = nullptr;
  metrics::Counter* relists = nullptr;
  metrics::Counter* watch_errors = nullptr;
  metrics::Gauge* leader = nullptr;
  metrics::Gauge* caches_synced = nullptr;

  static StatusOr<ControllerMetrics> Register(metrics::Registry& registry);
};

class Controller {
 public:
  Controller(k8s::Client& client, ControllerOptions options, ControllerMetrics metrics,
             Clock& clock = RealClock());
  ~Controller();  // Stop()
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  void StartInformers();
  bool WaitForCacheSync(std::chrono::milliseconds timeout);
  bool CachesSynced() const;
  // Starts the workers and the resync timer. Idempotent.
  void StartWorkers();
  // Stops workers (each finishes its current key) and informers. Idempotent.
  void Stop();

  // Queues every cached MoEModel.
  void ResyncAll();
  WorkQueue& queue() { return queue_; }
  Reconciler& reconciler() { return *reconciler_; }
  Informer& models() { return *models_; }

 private:
  void OnModel(const nlohmann::json& object);
  void OnOwned(const nlohmann::json& object);
  void Work();
  void ResyncLoop();

  k8s::Client& client_;
  const ControllerOptions options_;
  const ControllerMetrics metrics_;
  Clock& clock_;
  WorkQueue queue_;
  ApiEventRecorder events_;
  std::unique_ptr<Informer> models_;
  std::vector<std::unique_ptr<Informer>> owned_;
  std::unique_ptr<Reconciler> reconciler_;
  std::vector<std::thread> workers_;
  std::thread resync_;
  std::atomic<bool> workers_started_{false};
  std::atomic<bool> stopped_{false};
  Mutex mu_;    // only for waiting on cv_ (the state is in atomics)
  CondVar cv_;  // wakes the resync loop on Stop
};

}  // namespace kubemoe::op
