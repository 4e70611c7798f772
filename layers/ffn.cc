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

StatusOr<std::vector<float>> ReadTensor(const Checkpoint& ckpt, const std::string& name,
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
  return ckpt.ReadFloat(name);
}

StatusOr<FfnWeights> LoadFfn(const Checkpoint& ckpt, const std::string& prefix, int64_t hidden,
                             int64_t inter) {
  FfnWeights ffn;
  ffn.inter = inter;
  auto gate = ReadTensor(ckpt, prefix + ".gate_proj.weight", {inter, hidden});
  if (!gate.ok()) return gate.status();
  auto up = ReadTensor(ckpt, prefix + ".up_proj.weight", {inter, hidden});
  if (!up.ok()) return up.status();
  auto down = ReadTensor(ckpt, prefix + ".down_proj.weight", {hidden, inter});
  if (!down.ok()) return down.status();
  ffn.gate_proj = std::move(*gate);
  ffn.up_proj = std::move(*up);
  ffn.down_proj = std::move(*down);
  return ffn;
}

}  // namespace kubemoe::layers
