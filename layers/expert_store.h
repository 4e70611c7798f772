// A sparse table of routed experts keyed by (decoder layer, expert id). The single-process engine
// fills it with every expert; an expert-shard worker only with the experts its placement gives it,
// so it never reads the other experts' tensors.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "common/status.h"
#include "layers/ffn.h"
#include "model/checkpoint.h"
#include "model/config.h"

namespace kubemoe::layers {

struct ExpertKey {
  int64_t layer = 0;   // decoder layer index (a MoE layer)
  int32_t expert = 0;  // routed expert index within the layer
  auto operator<=>(const ExpertKey&) const = default;
};

// The experts of one layer, by id; nullptr when not held.
using ExpertLookup = std::function<const FfnWeights*(int32_t expert)>;

class ExpertStore {
 public:
  // Replaces any expert already held under `key`.
  void Add(ExpertKey key, FfnWeights weights) { experts_[key] = std::move(weights); }
  const FfnWeights* Find(int64_t layer, int32_t expert) const;
  // Looks experts of `layer` up in this store. REQUIRES: the store outlives the lookup.
  ExpertLookup LayerLookup(int64_t layer) const;

  bool empty() const { return experts_.empty(); }
  size_t size() const { return experts_.size(); }
  std::vector<ExpertKey> Keys() const;  // ascending
  int64_t Bytes() const;                // weight bytes held (as stored, or Q8_0)

 private:
  std::map<ExpertKey, FfnWeights> experts_;
};

// Loads the routed experts `keys` from `ckpt` (model.layers.{l}.mlp.experts.{e}.*). Every key must
// name a MoE layer of `config` and an expert below n_routed_experts; errors name the key, or the
// tensor and checkpoint when a read fails. The experts read the checkpoint's mapped bytes in
// place (kAsStored) and keep it alive, or hold Q8_0 copies (kQ8_0).
StatusOr<ExpertStore> LoadExperts(const std::shared_ptr<const Checkpoint>& ckpt,
                                  const ModelConfig& config, std::span<const ExpertKey> keys,
                                  WeightDType dtype = WeightDType::kAsStored);

}  // namespace kubemoe::layers
