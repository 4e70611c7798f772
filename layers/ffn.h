// One SwiGLU MLP's weights (a dense layer's MLP, a routed expert or the shared experts) and the
// checked tensor reads that load it from a checkpoint.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "layers/linear_weight.h"
#include "model/checkpoint.h"

namespace kubemoe::layers {

// Hugging Face layout: down(silu(gate(x)) * up(x)).
struct FfnWeights {
  int64_t inter = 0;       // intermediate size
  LinearWeight gate_proj;  // [inter x hidden]
  LinearWeight up_proj;    // [inter x hidden]
  LinearWeight down_proj;  // [hidden x inter]

  // Bytes of the weights as held (bf16 as stored: 2 per weight; Q8_0: 1.125).
  int64_t Bytes() const { return gate_proj.Bytes() + up_proj.Bytes() + down_proj.Bytes(); }
};

// The entry of tensor `name` after checking that it exists with this shape. NotFound /
// InvalidArgument name the tensor, the checkpoint directory and the expected and actual shapes.
StatusOr<TensorInfo> CheckTensorShape(const Checkpoint& ckpt, const std::string& name,
                                      const std::vector<int64_t>& shape);

// Reads tensor `name` as f32 after CheckTensorShape (norm weights and other small vectors).
StatusOr<std::vector<float>> ReadTensor(const Checkpoint& ckpt, const std::string& name,
                                        const std::vector<int64_t>& shape);

// Loads one SwiGLU MLP whose tensors are `prefix`.{gate,up,down}_proj.weight (LoadLinear).
StatusOr<FfnWeights> LoadFfn(const std::shared_ptr<const Checkpoint>& ckpt,
                             const std::string& prefix, int64_t hidden, int64_t inter,
                             WeightDType dtype);

}  // namespace kubemoe::layers
