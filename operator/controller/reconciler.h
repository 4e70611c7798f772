// One reconcile pass for one MoEModel: read it and its children from the informer caches, compute
// what should exist with the pure functions of operator/api/reconcile.h, and write only the
// differences (server-side apply for children, the status subresource for status, Events for
// condition transitions). A steady state therefore costs no API writes.
//
// The caches are read, never written (they are the informers' alone, as in controller-runtime).
// A cache that has not yet seen one of our writes can make the next pass apply again (a no-op
// on the server) or PUT status with an old resourceVersion (a Conflict, retried); it can never
// make a pass act on an object older than one the cache already held.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "operator/controller/clock.h"
#include "operator/controller/event_recorder.h"
#include "operator/controller/informer.h"

namespace kubemoe::k8s {
class Client;
}

namespace kubemoe::op {

struct ReconcileResult {
  enum class Outcome {
    kOk,        // converged (or nothing to do); forget the key's backoff
    kRequeue,   // a transient failure (conflict, 5xx, network): retry with backoff
    kError,     // a failure a retry is not expected to fix soon; also retried with backoff
  };
  Outcome outcome = Outcome::kOk;
  std::string message;                    // what failed, for logs
  std::chrono::milliseconds requeue_after{0};  // kOk only: look again after this long (0 = no)
  int writes = 0;                         // API writes made (applies, status updates)
};

// The informer caches the reconciler reads. Every pointer must be set and outlive the Reconciler.
struct ReconcilerCaches {
  Informer* models = nullptr;
  // Owned kinds by `kind` ("ConfigMap", "Service", "StatefulSet", "Deployment",
  // "PodDisruptionBudget", "NetworkPolicy").
  std::map<std::string, Informer*> owned;
};

class Reconciler {
 public:
  Reconciler(k8s::Client& client, ReconcilerCaches caches, EventRecorder& events, Clock& clock);

  // Reconciles the MoEModel "namespace/name". Thread-safe for distinct keys (the work queue
  // never hands one key to two workers).
  ReconcileResult Reconcile(const std::string& key);

 private:
  ReconcileResult WriteStatus(const nlohmann::json& live, const nlohmann::json& status,
                              ReconcileResult result);

  k8s::Client& client_;
  ReconcilerCaches caches_;
  EventRecorder& events_;
  Clock& clock_;
};

// The status for a MoEModel whose spec does not parse: Degraded/InvalidSpec with `message`,
// Ready and Progressing False, other fields kept from `old_status`; lastTransitionTime kept for
// conditions whose status did not change. Pure.
nlohmann::json InvalidSpecStatus(const nlohmann::json& old_status, int64_t generation,
                                 const std::string& message, const std::string& now_rfc3339);

}  // namespace kubemoe::op
