#include "layers/routes.h"

#include <string>

namespace kubemoe::layers {

void RaggedRoutes::AddToken(std::span<const int32_t> ids, std::span<const float> gate_weights,
                            std::span<const int32_t> token_devices) {
  expert_ids.insert(expert_ids.end(), ids.begin(), ids.end());
  weights.insert(weights.end(), gate_weights.begin(), gate_weights.end());
  devices.insert(devices.end(), token_devices.begin(), token_devices.end());
  token_offsets.push_back(static_cast<int64_t>(expert_ids.size()));
}

RaggedRoutes RoutesFromTopK(std::span<const int32_t> expert_ids, std::span<const float> weights,
                            std::span<const int32_t> devices, int64_t num_tokens, int32_t top_k) {
  RaggedRoutes r;
  const auto k = static_cast<size_t>(top_k);
  r.token_offsets.reserve(static_cast<size_t>(num_tokens) + 1);
  for (int64_t t = 0; t < num_tokens; ++t) {
    const size_t at = static_cast<size_t>(t) * k;
    r.AddToken(expert_ids.subspan(at, k), weights.subspan(at, k),
               devices.empty() ? std::span<const int32_t>() : devices.subspan(at, k));
  }
  return r;
}

Status ValidateRoutes(const RaggedRoutes& r, int32_t num_experts, int32_t num_devices) {
  if (r.token_offsets.empty() || r.token_offsets.front() != 0) {
    return InvalidArgument("routes: token offsets must start at 0");
  }
  if (r.weights.size() != r.expert_ids.size() ||
      (!r.devices.empty() && r.devices.size() != r.expert_ids.size())) {
    return InvalidArgument("routes: " + std::to_string(r.expert_ids.size()) + " expert ids, " +
                           std::to_string(r.weights.size()) + " gate weights and " +
                           std::to_string(r.devices.size()) + " devices disagree");
  }
  if (r.token_offsets.back() != r.num_routes()) {
    return InvalidArgument("routes: offsets end at " + std::to_string(r.token_offsets.back()) +
                           " but there are " + std::to_string(r.num_routes()) + " routes");
  }
  for (int64_t t = 0; t < r.num_tokens(); ++t) {
    if (r.end(t) < r.begin(t)) {
      return InvalidArgument("routes: token " + std::to_string(t) + " has decreasing offsets");
    }
    for (int64_t i = r.begin(t); i < r.end(t); ++i) {
      const int32_t e = r.expert_ids[static_cast<size_t>(i)];
      if (num_experts > 0 && (e < 0 || e >= num_experts)) {
        return InvalidArgument("routes: token " + std::to_string(t) + " names expert " +
                               std::to_string(e) + ", outside [0, " +
                               std::to_string(num_experts) + ")");
      }
      if (!r.devices.empty() && num_devices > 0) {
        const int32_t d = r.devices[static_cast<size_t>(i)];
        if (d < 0 || d >= num_devices) {
          return InvalidArgument("routes: token " + std::to_string(t) + " names device " +
                                 std::to_string(d) + ", outside [0, " +
                                 std::to_string(num_devices) + ")");
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace kubemoe::layers
