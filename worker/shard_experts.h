// Which routed experts one expert shard hosts, by decoder layer and local device, derived from
// the placement and the model config.
// Placement layers are MoE-layer ordinals (0..moe_layers-1); everything here speaks decoder-layer
// indices (config.IsMoeLayer), as ExpertBatch.layer and the checkpoint's tensor names do.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "layers/expert_store.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "placement/placement.h"

namespace kubemoe::worker {

class ShardExperts {
 public:
  // The experts of `shard`. InvalidArgument when the shard is outside the placement.
  // REQUIRES: placement::CheckPlacementMatchesModel(placement, ..., config) is OK.
  static StatusOr<ShardExperts> Build(const placement::Placement& placement,
                                      const ModelConfig& config, int32_t shard);

  int32_t shard() const { return shard_; }
  int32_t devices() const { return devices_; }
  // Decoder-layer indices of the MoE layers, ascending.
  const std::vector<int64_t>& moe_layers() const { return moe_layers_; }
  bool IsMoeLayer(int64_t layer) const { return by_layer_.contains(layer); }
  // Whether `expert` of `layer` has a slot on local device `device` (any device when device < 0).
  bool Hosts(int64_t layer, int32_t expert, int32_t device = -1) const;
  // The experts hosted on local `device` of `layer`, ascending (empty for a non-MoE layer).
  std::vector<int32_t> ExpertsOn(int64_t layer, int32_t device) const;
  // Every (layer, expert) hosted on at least one local device, ascending; each once, however many
  // local replicas it has (the CPU backend keeps one copy of the weights).
  const std::vector<layers::ExpertKey>& keys() const { return keys_; }

 private:
  int32_t shard_ = 0;
  int32_t devices_ = 0;
  std::vector<int64_t> moe_layers_;
  // decoder layer -> [local device][expert] hosted
  std::map<int64_t, std::vector<std::vector<bool>>> by_layer_;
  std::vector<layers::ExpertKey> keys_;
};

// Loads the weights of `experts.keys()` and nothing else of the checkpoint (in place as stored,
// keeping the checkpoint mapped, or quantized as `dtype` says).
StatusOr<layers::ExpertStore> LoadShardExperts(const std::shared_ptr<const Checkpoint>& ckpt,
                                               const ModelConfig& config,
                                               const ShardExperts& experts,
                                               layers::WeightDType dtype);

}  // namespace kubemoe::worker
