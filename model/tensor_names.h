// The tensors a DeepSeek-V2 checkpoint holds for a config, with Hugging Face names and shapes
// (e.g. "model.layers.3.mlp.experts.17.gate_proj.weight" [moe_intermediate_size, hidden_size]).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace kubemoe {

enum class TensorRole { kWeight, kNorm, kBias };

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;  // row-major, [out_features, in_features] for projections
  TensorRole role = TensorRole::kWeight;
};

// Every tensor of the checkpoint, in layer order.
std::vector<TensorSpec> CheckpointTensors(const ModelConfig& config);

// Name of one routed expert's projection: `projection` is "gate_proj", "up_proj" or "down_proj".
std::string ExpertTensorName(int64_t layer, int64_t expert, const char* projection);

}  // namespace kubemoe
