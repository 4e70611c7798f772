#include "engine/kv_cache.h"

#include <algorithm>

#include "kernels/cpu/convert.h"
#include "model/dtype.h"

namespace kubemoe::engine {

const char* KvCacheDTypeName(KvCacheDType dtype) {
  return dtype == KvCacheDType::kBf16 ? "bf16" : "f32";
}

StatusOr<KvCacheDType> ParseKvCacheDType(const std::string& name) {
  if (name == "f32") return KvCacheDType::kF32;
  if (name == "bf16") return KvCacheDType::kBf16;
  return InvalidArgument("unknown KV cache dtype \"" + name + "\" (accepted: f32, bf16)");
}

LatentKvCache::LatentKvCache(const ModelConfig& config, int64_t capacity, KvCacheDType dtype)
    : num_layers_(config.num_hidden_layers),
      capacity_(capacity),
      rank_(config.kv_lora_rank),
      row_(RowFloats(config)),
      dtype_(dtype) {
  const auto n = static_cast<size_t>(num_layers_ * capacity_ * row_);
  if (dtype_ == KvCacheDType::kF32) {
    f32_.assign(n, 0.0f);
  } else {
    bf16_.assign(n, 0);
  }
}

void LatentKvCache::WriteRows(int64_t layer, int64_t pos, const float* rows, int64_t n) {
  const int64_t offset = (layer * capacity_ + pos) * row_;
  if (dtype_ == KvCacheDType::kF32) {
    std::copy(rows, rows + n * row_, f32_.data() + offset);
    return;
  }
  uint16_t* dst = bf16_.data() + offset;
  for (int64_t i = 0; i < n * row_; ++i) dst[i] = FloatToBf16(rows[i]);
}

const float* LatentKvCache::RowsF32(int64_t layer, int64_t n, std::vector<float>* buffer) const {
  if (dtype_ == KvCacheDType::kF32) return LayerRows(layer);
  buffer->resize(static_cast<size_t>(n * row_));
  cpu::Bf16ToF32(bf16_.data() + layer * capacity_ * row_, buffer->data(),
                 static_cast<size_t>(n * row_));
  return buffer->data();
}

}  // namespace kubemoe::engine
