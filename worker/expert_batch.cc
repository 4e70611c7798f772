#include "worker/expert_batch.h"

#include <chrono>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "layers/grouped_experts.h"
#include "transport/tensor_codec.h"

namespace kubemoe::worker {
namespace {

// Checks what ValidateRoutes does not: one expert at most once per token (so no token can
// multiply the work of a batch) and finite gate weights.
Status CheckTokenRoutes(const layers::RaggedRoutes& routes, int32_t routed_experts) {
  std::vector<int64_t> last_token(static_cast<size_t>(routed_experts), -1);
  for (int64_t t = 0; t < routes.num_tokens(); ++t) {
    for (int64_t r = routes.begin(t); r < routes.end(t); ++r) {
      const int32_t e = routes.expert_ids[static_cast<size_t>(r)];
      if (last_token[static_cast<size_t>(e)] == t) {
        return InvalidArgument("routes[" + std::to_string(t) + "]: expert " + std::to_string(e) +
                               " is named twice");
      }
      last_token[static_cast<size_t>(e)] = t;
      if (!std::isfinite(routes.weights[static_cast<size_t>(r)])) {
        return InvalidArgument("routes[" + std::to_string(t) + "]: gate weight of expert " +
                               std::to_string(e) + " is not finite");
      }
    }
  }
  return Status::Ok();
}

}  // namespace

ExpertBatchRunner::ExpertBatchRunner(uint64_t placement_version, int64_t hidden_size,
                                     int32_t routed_experts, const ShardExperts& experts,
                                     const layers::ExpertStore& store, ThreadPool& pool)
    : placement_version_(placement_version),
      hidden_size_(hidden_size),
      routed_experts_(routed_experts),
      experts_(experts),
      store_(store),
      pool_(pool) {}

Status ExpertBatchRunner::Run(const kubemoe::v1::ExpertBatch& batch,
                              kubemoe::v1::ExpertBatchResult* result) const {
  if (batch.placement_version() != placement_version_) {
    return FailedPrecondition(
        "the batch was routed with placement version " + std::to_string(batch.placement_version()) +
        " but this worker serves placement version " + std::to_string(placement_version_));
  }
  const int64_t layer = batch.layer();
  if (!experts_.IsMoeLayer(layer)) {
    return FailedPrecondition("layer " + std::to_string(layer) +
                              " is not a MoE layer of this model");
  }
  StatusOr<transport::WireDType> dtype = transport::TensorWireDType(batch.hidden_states());
  if (!dtype.ok()) return InvalidArgument("hidden_states: " + dtype.status().message());
  StatusOr<std::vector<float>> hidden =
      transport::DecodeTensor(batch.hidden_states(), hidden_size_, "hidden_states");
  if (!hidden.ok()) return hidden.status();
  const int64_t num_tokens = batch.hidden_states().shape(0);
  StatusOr<layers::RaggedRoutes> routes = transport::DecodeRoutes(batch, num_tokens);
  if (!routes.ok()) return routes.status();
  KUBEMOE_RETURN_IF_ERROR(layers::ValidateRoutes(*routes, routed_experts_, experts_.devices()));
  KUBEMOE_RETURN_IF_ERROR(CheckTokenRoutes(*routes, routed_experts_));
  const bool placed = !routes->devices.empty();
  for (int64_t r = 0; r < routes->num_routes(); ++r) {
    const int32_t e = routes->expert_ids[static_cast<size_t>(r)];
    const int32_t d = placed ? routes->devices[static_cast<size_t>(r)] : -1;
    if (!experts_.Hosts(layer, e, d)) {
      return FailedPrecondition(
          "layer " + std::to_string(layer) + " expert " + std::to_string(e) +
          (placed ? " is not hosted on device " + std::to_string(d) + " of shard "
                  : " is not hosted on any device of shard ") +
          std::to_string(experts_.shard()));
    }
  }

  std::vector<float> out(hidden->size());
  std::map<int32_t, int64_t> counts;
  const auto start = std::chrono::steady_clock::now();
  KUBEMOE_RETURN_IF_ERROR(layers::RunRoutedExperts(pool_, store_.LayerLookup(layer), hidden_size_,
                                                   hidden->data(), *routes, out.data(), &counts));
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;

  result->set_layer(batch.layer());
  result->set_placement_version(placement_version_);
  transport::EncodeTensor(out.data(), num_tokens, hidden_size_, *dtype, result->mutable_outputs());
  for (const auto& [expert, n] : counts) (*result->mutable_expert_token_counts())[expert] = n;
  result->set_compute_seconds(took.count());
  return Status::Ok();
}

}  // namespace kubemoe::worker
