// Records core/v1 Events on a MoEModel so `kubectl describe moe NAME` shows what the operator did.
// Recording is best effort: a failure is logged, never returned (an Event is not worth a retry).
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "operator/api/reconcile.h"
#include "operator/controller/clock.h"

namespace kubemoe::k8s {
class Client;
}

namespace kubemoe::op {

class EventRecorder {
 public:
  virtual ~EventRecorder() = default;
  // Records `event` about `involved` (an object as the API server returns it).
  virtual void Record(const nlohmann::json& involved, const EventSpec& event) = 0;
};

// Creates Events through the API server, source component "kubemoe-operator".
class ApiEventRecorder final : public EventRecorder {
 public:
  ApiEventRecorder(k8s::Client& client, Clock& clock, std::string instance);
  void Record(const nlohmann::json& involved, const EventSpec& event) override;

 private:
  k8s::Client& client_;
  Clock& clock_;
  std::string instance_;
};

}  // namespace kubemoe::op
