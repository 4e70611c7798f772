// One SwiGLU MLP's weights (a dense layer's MLP, a routed expert or the shared experts) and the
// checked tensor reads that load it from a checkpoint.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/checkpoint.h"

namespace kubemoe::layers {

// f32, row-major, Hugging Face layout: down(silu(gate(x)) * up(x)).
struct FfnWeights {
  int64_t inter = 0;             // intermediate size
  std::vector<float> gate_proj;  // [inter x hidden]
  std::vector<float> up_proj;    // [inter x hidden]
  std::vector<float> down_proj;  // [hidden x inter]

  int64_t Bytes() const {
    return static_cast<int64_t>((gate_proj.size() + up_proj.size() + down_proj.size()) *
                                sizeof(float));
  }
};

// Reads tensor `name` as f32 and checks its shape. NotFound / InvalidArgument name the tensor,
// the checkpoint directory and the expected and actual shapes.
StatusOr<std::vector<float>> ReadTensor(const Checkpoint& ckpt, const std::string& name,
                                        const std::vector<int64_t>& shape);

// Loads one SwiGLU MLP whose tensors are `prefix`.{gate,up,down}_proj.weight.
StatusOr<FfnWeights> LoadFfn(const Checkpoint& ckpt, const std::string& prefix, int64_t hidden,
                             int64_t inter);

}  // namespace kubemoe::layers
