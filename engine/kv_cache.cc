#include "engine/kv_cache.h"

namespace kubemoe::engine {

LatentKvCache::LatentKvCache(const ModelConfig& config, int64_t capacity)
    : num_layers_(config.num_hidden_layers),
      capacity_(capacity),
      rank_(config.kv_lora_rank),
      row_(RowFloats(config)),
      data_(static_cast<size_t>(num_layers_ * capacity_ * row_), 0.0f) {}

}  // namespace kubemoe::engine
