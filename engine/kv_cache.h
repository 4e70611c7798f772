// The MLA latent KV cache of one sequence: per token and layer only kv_lora_rank +
// qk_rope_head_dim values, the normed compressed kv (c_kv) followed by the roped k_pe that every
// head shares. Full keys and values are never stored; decode attends to these rows directly
// (absorbed form) and prefill may decompress them through kv_b_proj.
//
// Rows are kept in f32 (exact, the default) or bf16 (half the memory; each value rounded to
// nearest-even when written, so attention sees values within 2^-9 relative of the f32 ones).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/config.h"

namespace kubemoe::engine {

enum class KvCacheDType { kF32, kBf16 };
// "f32" / "bf16".
const char* KvCacheDTypeName(KvCacheDType dtype);
StatusOr<KvCacheDType> ParseKvCacheDType(const std::string& name);

class LatentKvCache {
 public:
  // Values cached per token and layer: kv_lora_rank + qk_rope_head_dim.
  static int64_t RowFloats(const ModelConfig& config) {
    return config.kv_lora_rank + config.qk_rope_head_dim;
  }
  // Bytes cached per token and layer.
  static int64_t BytesPerTokenPerLayer(const ModelConfig& config,
                                       KvCacheDType dtype = KvCacheDType::kF32) {
    return RowFloats(config) * (dtype == KvCacheDType::kF32 ? 4 : 2);
  }

  // Allocates room for `capacity` tokens in each of the config's layers, all at once.
  LatentKvCache(const ModelConfig& config, int64_t capacity,
                KvCacheDType dtype = KvCacheDType::kF32);

  int64_t capacity() const { return capacity_; }
  int64_t num_layers() const { return num_layers_; }
  int64_t row_floats() const { return row_; }
  int64_t kv_lora_rank() const { return rank_; }
  KvCacheDType dtype() const { return dtype_; }
  // Tokens whose rows are complete in every layer.
  int64_t length() const { return length_; }
  // Bytes of cache storage held: num_layers x capacity x BytesPerTokenPerLayer.
  int64_t AllocatedBytes() const {
    return static_cast<int64_t>(f32_.size() * sizeof(float) + bf16_.size() * sizeof(uint16_t));
  }

  // Writes rows [pos, pos + n) of `layer` from n x row_floats() f32 values (rounded to bf16 in
  // a bf16 cache). REQUIRES: 0 <= layer < num_layers, pos + n <= capacity.
  void WriteRows(int64_t layer, int64_t pos, const float* rows, int64_t n);
  // Rows [0, n) of `layer` as f32, row-major [n x row_floats()]: the cache itself when it is
  // f32, else widened into *buffer (resized as needed). The pointer is valid until the cache or
  // buffer changes. REQUIRES: n <= capacity.
  const float* RowsF32(int64_t layer, int64_t n, std::vector<float>* buffer) const;

  // The f32 rows of `layer` ([capacity x row_floats()], row p for position p).
  // REQUIRES: dtype() == kF32; 0 <= layer < num_layers.
  float* LayerRows(int64_t layer) { return f32_.data() + layer * capacity_ * row_; }
  const float* LayerRows(int64_t layer) const { return f32_.data() + layer * capacity_ * row_; }

  // Marks `n` more positions as written in every layer. REQUIRES: length() + n <= capacity().
  void Advance(int64_t n) { length_ += n; }
  // Forgets every token (the storage is kept for reuse).
  void Clear() { length_ = 0; }

 private:
  int64_t num_layers_;
  int64_t capacity_;
  int64_t rank_;
  int64_t row_;
  KvCacheDType dtype_;
  int64_t length_ = 0;
  std::vector<float> f32_;      // kF32
  std::vector<uint16_t> bf16_;  // kBf16
};

}  // namespace kubemoe::engine
