// Fuzzes ParseMoEModel on JSON: any bytes give a model or a clear error; a model that parses
// either has a desired state or a placement error, and its status can be computed.
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "operator/api/reconcile.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json object = nlohmann::json::parse(data, data + size, nullptr, false);
  if (object.is_discarded()) return 0;
  auto model = kubemoe::op::ParseMoEModel(object);
  if (!model.ok()) {
    if (model.status().message().empty()) __builtin_trap();
    return 0;
  }
  // Keep huge (valid) placements out of the hot loop.
  if (static_cast<int64_t>(model->spec.model.routed_experts) * model->spec.model.moe_layers >
      1 << 16) {
    return 0;
  }
  auto desired = kubemoe::op::ComputeDesiredState(*model);
  kubemoe::op::ObservedChildren none;
  if (desired.ok()) {
    // Seven children, the NetworkPolicy either among them or (disabled) the one to delete.
    const size_t objects = model->spec.network_policy.enabled ? 7 : 6;
    if (desired->objects.size() != objects || objects + desired->absent.size() != 7) {
      __builtin_trap();
    }
    (void)kubemoe::op::ComputeStatus(*model, *desired, none, "T");
  } else {
    (void)kubemoe::op::ComputeStatus(*model, {}, none, "T", desired.status());
  }
  return 0;
}
