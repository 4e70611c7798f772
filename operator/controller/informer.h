// An informer keeps an in-memory copy of one kind of object current: it lists, then watches from
// the list's resourceVersion (with bookmarks, so a reconnect resumes from a recent version),
// relists when the server answers 410 Gone (the version was compacted away), and reconnects
// after errors with capped exponential backoff and jitter. Every change (add, update, delete,
// and the differences a relist finds) is passed to the handler, on the informer's thread.
//
// Objects in the cache are immutable snapshots shared by pointer: readers keep them as long as
// they like without copying or locking. Only the informer's own list and watch change the cache,
// in the order the server sent them, so it never goes back to an older object; as in
// controller-runtime, a writer sees its own write when the watch delivers it, not before.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/metrics.h"
#include "common/mutex.h"
#include "operator/k8s/client.h"

namespace kubemoe::op {

using ObjectPtr = std::shared_ptr<const nlohmann::json>;

struct InformerOptions {
  k8s::Resource resource;
  std::string namespace_;      // "" = all namespaces
  std::string label_selector;  // "" = every object
  // Each watch asks the server to end it after a random time in [t, 2t), as client-go does, so
  // many informers do not reconnect in step.
  std::chrono::seconds watch_timeout{300};
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{30000};
  metrics::Counter* relists = nullptr;        // counted on every list after the first
  metrics::Counter* watch_errors = nullptr;   // failed or broken watches
};

class Informer {
 public:
  // Called with the new object (or, for a deletion, its last known state).
  using Handler = std::function<void(const nlohmann::json& object)>;

  Informer(k8s::Client& client, InformerOptions options, Handler handler);
  ~Informer();  // stops
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Starts the list/watch thread. REQUIRES: called once.
  void Start();
  // Stops the thread (cancels the open watch) and waits for it.
  void Stop();
  // True once the first list has been stored.
  bool HasSynced() const { return synced_.load(); }
  // Blocks until HasSynced or `timeout`; returns HasSynced.
  bool WaitForSync(std::chrono::milliseconds timeout) const;

  // The cached object "namespace/name" (or "name" when cluster-scoped); null when absent.
  ObjectPtr Get(const std::string& key) const;
  // Every cached object.
  std::vector<ObjectPtr> List() const;
  // Number of list requests that succeeded (1 after the first sync; more after relists).
  uint64_t list_count() const { return lists_.load(); }
  // The resourceVersion the next watch would start from.
  std::string resource_version() const;
  const k8s::Resource& resource() const { return options_.resource; }

  // "namespace/name" of an object ("name" when it has no namespace).
  static std::string KeyOf(const nlohmann::json& object);

 private:
  void Run();
  bool ListOnce();                                    // true on success
  k8s::ApiError WatchOnce(bool* saw_event, bool* gone);
  void SleepFor(std::chrono::milliseconds d);         // returns early on Stop
  std::chrono::milliseconds NextBackoff();

  k8s::Client& client_;
  const InformerOptions options_;
  const Handler handler_;
  k8s::CancelToken cancel_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> synced_{false};
  std::atomic<uint64_t> lists_{0};
  std::chrono::milliseconds backoff_{0};              // only the informer thread touches it

  mutable Mutex mu_;
  mutable CondVar cv_;  // Stop and sync wake-ups
  std::map<std::string, ObjectPtr> cache_ KUBEMOE_GUARDED_BY(mu_);
  std::string resource_version_ KUBEMOE_GUARDED_BY(mu_);
};

}  // namespace kubemoe::op
