#include "layers/expert_store.h"

#include <string>

namespace kubemoe::layers {

const FfnWeights* ExpertStore::Find(int64_t layer, int32_t expert) const {
  auto it = experts_.find(ExpertKey{layer, expert});
  return it == experts_.end() ? nullptr : &it->second;
}

ExpertLookup ExpertStore::LayerLookup(int64_t layer) const {
  return [this, layer](int32_t expert) { return Find(layer, expert); };
}

std::vector<ExpertKey> ExpertStore::Keys() const {
  std::vector<ExpertKey> keys;
  keys.reserve(experts_.size());
  for (const auto& [key, w] : experts_) keys.push_back(key);
  return keys;
}

int64_t ExpertStore::Bytes() const {
  int64_t bytes = 0;
  for (const auto& [key, w] : experts_) bytes += w.Bytes();
  return bytes;
}

StatusOr<ExpertStore> LoadExperts(const std::shared_ptr<const Checkpoint>& ckpt,
                                  const ModelConfig& c, std::span<const ExpertKey> keys,
                                  WeightDType dtype) {
  ExpertStore store;
  for (const ExpertKey& k : keys) {
    const std::string which =
        "routed expert " + std::to_string(k.expert) + " of layer " + std::to_string(k.layer);
    if (k.layer < 0 || k.layer >= c.num_hidden_layers || !c.IsMoeLayer(k.layer)) {
      return InvalidArgument(which + ": layer " + std::to_string(k.layer) +
                             " is not a MoE layer of " + c.source);
    }
    if (k.expert < 0 || k.expert >= c.n_routed_experts) {
      return InvalidArgument(which + ": the model has " + std::to_string(c.n_routed_experts) +
                             " routed experts");
    }
    auto ffn = LoadFfn(
        ckpt,
        "model.layers." + std::to_string(k.layer) + ".mlp.experts." + std::to_string(k.expert),
        c.hidden_size, c.moe_intermediate_size, dtype);
    if (!ffn.ok()) return ffn.status();
    store.Add(k, std::move(*ffn));
  }
  return store;
}

}  // namespace kubemoe::layers
