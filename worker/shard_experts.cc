#include "worker/shard_experts.h"

#include <utility>

namespace kubemoe::worker {

StatusOr<ShardExperts> ShardExperts::Build(const placement::Placement& p, const ModelConfig& config,
                                           int32_t shard) {
  if (shard < 0 || shard >= p.shards) {
    return InvalidArgument("shard index " + std::to_string(shard) + " is outside the placement's " +
                           std::to_string(p.shards) + " shards");
  }
  ShardExperts out;
  out.shard_ = shard;
  out.devices_ = p.devices_per_shard;
  int32_t ordinal = 0;  // MoE-layer ordinal: the placement's layer index
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    if (!config.IsMoeLayer(layer)) continue;
    out.moe_layers_.push_back(layer);
    auto& hosted = out.by_layer_[layer];
    hosted.assign(static_cast<size_t>(p.devices_per_shard),
                  std::vector<bool>(static_cast<size_t>(p.routed_experts), false));
    std::vector<bool> any(static_cast<size_t>(p.routed_experts), false);
    for (int32_t d = 0; d < p.devices_per_shard; ++d) {
      const int32_t global = p.GlobalDevice({shard, d});
      for (int32_t e : placement::ExpertsOnDevice(p, ordinal, global)) {
        hosted[static_cast<size_t>(d)][static_cast<size_t>(e)] = true;
        any[static_cast<size_t>(e)] = true;
      }
    }
    for (int32_t e = 0; e < p.routed_experts; ++e) {
      if (any[static_cast<size_t>(e)]) out.keys_.push_back({layer, e});
    }
    ++ordinal;
  }
  return out;
}

bool ShardExperts::Hosts(int64_t layer, int32_t expert, int32_t device) const {
  auto it = by_layer_.find(layer);
  if (it == by_layer_.end() || device >= devices_) return false;
  const auto& hosted = it->second;
  for (int32_t d = 0; d < devices_; ++d) {
    if (device >= 0 && d != device) continue;
    const auto& row = hosted[static_cast<size_t>(d)];
    if (expert >= 0 && static_cast<size_t>(expert) < row.size() &&
        row[static_cast<size_t>(expert)]) {
      return true;
    }
  }
  return false;
}

std::vector<int32_t> ShardExperts::ExpertsOn(int64_t layer, int32_t device) const {
  std::vector<int32_t> out;
  auto it = by_layer_.find(layer);
  if (it == by_layer_.end() || device < 0 || device >= devices_) return out;
  const auto& row = it->second[static_cast<size_t>(device)];
  for (size_t e = 0; e < row.size(); ++e) {
    if (row[e]) out.push_back(static_cast<int32_t>(e));
  }
  return out;
}

StatusOr<layers::ExpertStore> LoadShardExperts(const std::shared_ptr<const Checkpoint>& ckpt,
                                               const ModelConfig& config,
                                               const ShardExperts& experts,
                                               layers::WeightDType dtype) {
  return layers::LoadExperts(ckpt, config, experts.keys(), dtype);
}

}  // namespace kubemoe::worker
