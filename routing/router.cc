#include "routing/router.h"

#include <string>
#include <utility>
#include <vector>

#include "routing/device_limited.h"
#include "routing/dispatch.h"
#include "routing/divergence.h"
#include "routing/gate_weights.h"
#include "routing/model_selection.h"
#include "routing/scoring.h"

namespace kubemoe::routing {
namespace {

Status CheckLength(const char* name, size_t have, int64_t need) {
  if (static_cast<int64_t>(have) >= need) return Status::Ok();
  return InvalidArgument(std::string("routing output '") + name + "' holds " +
                         std::to_string(have) + " elements, needs " + std::to_string(need));
}

}  // namespace

Router::Router(RouterConfig config) : config_(std::move(config)) {
  if (has_placement()) flat_ = FlattenPlacement(config_.placement);
}

StatusOr<Router> Router::Create(RouterConfig config) {
  KUBEMOE_RETURN_IF_ERROR(ValidateGateConfig(config.gate));
  const bool placed = config.placement.num_devices != 0 || !config.placement.expert_devices.empty();
  if (placed) {
    KUBEMOE_RETURN_IF_ERROR(ValidatePlacement(config.placement, config.gate.num_experts));
  }
  if (config.device_limit != 0) {
    if (!placed) {
      return InvalidArgument("routing.deviceLimit=" + std::to_string(config.device_limit) +
                             " needs a placement of the experts on devices, and none was given");
    }
    KUBEMOE_RETURN_IF_ERROR(ValidateDeviceLimit(config.placement, config.gate.num_experts,
                                                config.gate.top_k, config.device_limit));
  }
  return Router(std::move(config));
}

Status Router::Route(std::span<const float> logits, int64_t num_tokens, const RouteOutput& out,
                     std::span<int64_t> device_load) const {
  const GateConfig& gate = config_.gate;
  const int32_t n = gate.num_experts;
  const int32_t k = gate.top_k;
  const int32_t num_devices = config_.placement.num_devices;
  if (num_tokens < 0) return InvalidArgument("num_tokens must be >= 0");
  if (static_cast<int64_t>(logits.size()) != num_tokens * n) {
    return InvalidArgument("gate logits hold " + std::to_string(logits.size()) +
                           " floats, expected num_tokens=" + std::to_string(num_tokens) +
                           " x n_routed_experts=" + std::to_string(n));
  }
  KUBEMOE_RETURN_IF_ERROR(CheckLength("expert_ids", out.expert_ids.size(), num_tokens * k));
  KUBEMOE_RETURN_IF_ERROR(CheckLength("weights", out.weights.size(), num_tokens * k));
  const bool dispatch = !out.devices.empty();
  if (dispatch) {
    if (!has_placement()) {
      return InvalidArgument("routing output 'devices' was given but the router has no placement");
    }
    KUBEMOE_RETURN_IF_ERROR(CheckLength("devices", out.devices.size(), num_tokens * k));
  }
  const bool report_divergence = !out.differs_from_model.empty();
  if (report_divergence) {
    KUBEMOE_RETURN_IF_ERROR(
        CheckLength("differs_from_model", out.differs_from_model.size(), num_tokens));
  }
  if (!device_load.empty() && static_cast<int64_t>(device_load.size()) != num_devices) {
    return InvalidArgument("device_load holds " + std::to_string(device_load.size()) +
                           " counts, expected one per device (" + std::to_string(num_devices) +
                           ")");
  }

  // All per-token scratch, allocated once per call.
  const size_t groups = static_cast<size_t>(gate.n_group > 0 ? gate.n_group : 1);
  const size_t devices = static_cast<size_t>(num_devices);
  const size_t limit = static_cast<size_t>(config_.device_limit);
  std::vector<float> fscratch(static_cast<size_t>(n) + groups + devices + static_cast<size_t>(k));
  std::vector<int32_t> iscratch(groups + limit + static_cast<size_t>(k));
  std::vector<uint8_t> bscratch(static_cast<size_t>(n) + devices);
  std::vector<int64_t> own_load;
  int64_t* load = device_load.data();
  if (dispatch && device_load.empty()) {
    own_load.assign(devices, 0);
    load = own_load.data();
  }
  float* scores = fscratch.data();
  float* selected_scores = scores + n + groups + devices;
  int32_t* model_ids = iscratch.data() + groups + limit;
  const ModelSelectionScratch model_scratch{scores + n, iscratch.data(), bscratch.data()};
  const DeviceSelectionScratch device_scratch{scores + n + groups, iscratch.data() + groups,
                                              bscratch.data() + n, bscratch.data()};

  for (int64_t t = 0; t < num_tokens; ++t) {
    KUBEMOE_RETURN_IF_ERROR(ScoreExperts(gate.scoring, logits.data() + t * n, n, scores, t));
    int32_t* ids = out.expert_ids.data() + t * k;
    if (config_.device_limit > 0) {
      const int32_t picked =
          SelectDeviceLimited(flat_, scores, n, config_.device_limit, k, device_scratch, ids);
      if (picked < k) {
        return FailedPrecondition("token " + std::to_string(t) + ": the " +
                                  std::to_string(config_.device_limit) +
                                  " kept devices host only " + std::to_string(picked) +
                                  " experts, fewer than num_experts_per_tok=" + std::to_string(k) +
                                  "; raise routing.deviceLimit or rebalance the placement");
      }
    } else {
      SelectModelFaithful(gate, scores, model_scratch, ids);
    }
    for (int32_t j = 0; j < k; ++j) selected_scores[j] = scores[ids[j]];
    ComputeGateWeights(selected_scores, k, gate.norm_topk_prob, gate.routed_scaling_factor,
                       out.weights.data() + t * k);
    if (dispatch) {
      const uint8_t* allowed = config_.device_limit > 0 ? device_scratch.device_kept : nullptr;
      if (!AssignDevices(flat_, ids, k, allowed, load, out.devices.data() + t * k)) {
        return Internal("token " + std::to_string(t) +
                        ": a selected expert has no replica on an allowed device");
      }
    }
    if (report_divergence) {
      bool differs = false;
      if (config_.device_limit > 0) {
        SelectModelFaithful(gate, scores, model_scratch, model_ids);
        differs = SelectionDiffers(ids, model_ids, k);
      }
      out.differs_from_model[static_cast<size_t>(t)] = differs ? 1 : 0;
    }
  }
  return Status::Ok();
}

}  // namespace kubemoe::routing
