// The MLA latent KV cache of one sequence: per token and layer only kv_lora_rank +
// qk_rope_head_dim floats, the normed compressed kv (c_kv) followed by the roped k_pe that every
// head shares. Full keys and values are never stored; decode attends to these rows directly
// (absorbed form) and prefill may decompress them through kv_b_proj.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace kubemoe::engine {

class LatentKvCache {
 public:
  // Floats cached per token and layer: kv_lora_rank + qk_rope_head_dim.
  static int64_t RowFloats(const ModelConfig& config) {
    return config.kv_lora_rank + config.qk_rope_head_dim;
  }
  // Bytes cached per token and layer (f32 storage).
  static int64_t BytesPerTokenPerLayer(const ModelConfig& config) {
    return RowFloats(config) * static_cast<int64_t>(sizeof(float));
  }

  // Allocates room for `capacity` tokens in each of the config's layers, all at once.
  LatentKvCache(const ModelConfig& config, int64_t capacity);

  int64_t capacity() const { return capacity_; }
  int64_t num_layers() const { return num_layers_; }
  int64_t row_floats() const { return row_; }
  int64_t kv_lora_rank() const { return rank_; }
  // Tokens whose rows are complete in every layer.
  int64_t length() const { return length_; }
  // Bytes of cache storage held: num_layers x capacity x BytesPerTokenPerLayer.
  int64_t AllocatedBytes() const { return static_cast<int64_t>(data_.size() * sizeof(float)); }

  // Row-major [capacity x row_floats] rows of `layer`; row p belongs to position p.
  // REQUIRES: 0 <= layer < num_layers.
  float* LayerRows(int64_t layer) { return data_.data() + layer * capacity_ * row_; }
  const float* LayerRows(int64_t layer) const { return data_.data() + layer * capacity_ * row_; }

  // Marks `n` more positions as written in every layer. REQUIRES: length() + n <= capacity().
  void Advance(int64_t n) { length_ += n; }
  // Forgets every token (the storage is kept for reuse).
  void Clear() { length_ = 0; }

 private:
  int64_t num_layers_;
  int64_t capacity_;
  int64_t rank_;
  int64_t row_;
  int64_t length_ = 0;
  std::vector<float> data_;
};

}  // namespace kubemoe::engine
