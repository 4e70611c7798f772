#include "layers/ffn.h"

#include <utility>

namespace kubemoe::layers {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace

StatusOr<TensorInfo> CheckTensorShape(const Checkpoint& ckpt, const std::string& name,
                                      const std::vector<int64_t>& shape) {
  if (!ckpt.Has(name)) {
    return NotFound("checkpoint " + ckpt.dir() + " has no tensor " + name + " (expected shape " +
                    ShapeString(shape) + ")");
  }
  StatusOr<TensorInfo> info = ckpt.Info(name);
  if (!info.ok()) return info.status();
  std::vector<int64_t> have(info->shape.begin(), info->shape.end());
  if (have != shape) {
    return InvalidArgument("checkpoint " + ckpt.dir() + ": tensor " + name + " has shape " +
                           ShapeString(have) + ", the config implies " + ShapeString(shape));
  }
  return info;
}

StatusOr<std::vector<float>> ReadTensor(const Checkpoint& ckpt, const std::string& name,
                                        const std::vector<int64_t>& shape) {
  StatusOr<TensorInfo> info = CheckTensorShape(ckpt, name, shape);
  if (!info.ok()) return info.status();
  return ckpt.ReadFloat(name);
}

StatusOr<FfnWeights> LoadFfn(const std::shared_ptr<const Checkpoint>& ckpt,
                             const std::string& prefix, int64_t hidden, int64_t inter,
                             WeightDType dtype) {
  FfnWeights ffn;
  ffn.inter = inter;
  auto gate = LoadLinear(ckpt, prefix + ".gate_proj.weight", inter, hidden, dtype);
  if (!gate.ok()) return gate.status();
  auto up = LoadLinear(ckpt, prefix + ".up_proj.weight", inter, hidden, dtype);
  if (!up.ok()) return up.status();
  auto down = LoadLinear(ckpt, prefix + ".down_proj.weight", hidden, inter, dtype);
  if (!down.ok()) return down.status();
  ffn.gate_proj = std::move(*gate);
  ffn.up_proj = std::move(*up);
  ffn.down_proj = std::move(*down);
  return ffn;
}

}  // namespace kubemoe::layers
