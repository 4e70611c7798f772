// Writes a complete Hugging Face-format DeepSeek-V2 checkpoint with random weights:
// config.json, model.safetensors (or shards + model.safetensors.index.json) and tokenizer.json.
// Used by `kubemoe make-model` for tests and benchmarks.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "model/config.h"
#include "model/dtype.h"

namespace kubemoe {

struct RandomCheckpointOptions {
  std::string out_dir;           // created if missing; existing checkpoint files are replaced
  DType dtype = DType::kF32;     // F32, BF16 or F16
  uint64_t seed = 0;
  uint64_t max_shard_bytes = 0;  // 0: one model.safetensors; else shards of at most this size
};

// Weights are N(0, initializer_range), norms 1 + N(0, initializer_range), biases 0. Each
// tensor's values depend only on (seed, tensor name), not on order or sharding.
// REQUIRES: config passed ValidateModelConfig; tokenizer_json is a tokenizer.json whose
// vocabulary fits config.vocab_size (the caller checks).
Status WriteRandomCheckpoint(const ModelConfig& config, std::string_view tokenizer_json,
                             const RandomCheckpointOptions& options);

// Fills `out` with standard normal samples scaled by `stddev`, deterministically from the
// 64-bit `stream` (see above).
void FillNormal(uint64_t stream, float stddev, float mean, float* out, size_t n);

}  // namespace kubemoe
