// A Hugging Face checkpoint directory: its weights, looked up by tensor name.
//
// Either a single `model.safetensors`, or shards listed in `model.safetensors.index.json`
// ({"metadata": {...}, "weight_map": {tensor name: shard file name}}). Shards are opened (mapped)
// lazily on the first access to one of their tensors, so a worker that touches only its own
// experts maps only the files that hold them.
//
//   StatusOr<Checkpoint> ckpt = Checkpoint::Open("/models/deepseek-v2-lite");
//   if (!ckpt.ok()) return ckpt.status();
//   StatusOr<std::vector<float>> w =
//   ckpt->ReadFloat("model.layers.1.mlp.experts.7.up_proj.weight");
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "model/safetensors.h"

namespace kubemoe {

inline constexpr char kSafetensorsSingleFile[] = "model.safetensors";
inline constexpr char kSafetensorsIndexFile[] = "model.safetensors.index.json";

// The parsed weight map of an index file: tensor name -> shard file name.
struct CheckpointIndex {
  std::map<std::string, std::string> weight_map;
};

// Parses the text of `model.safetensors.index.json`. `source` is named in errors. DataLoss when
// the text is not a JSON object with a "weight_map" object of strings; InvalidArgument when a
// shard name is not a plain file name in the same directory (it contains '/' or is "." / "..").
StatusOr<CheckpointIndex> ParseCheckpointIndex(std::string_view text, std::string_view source);

// Move-only. Thread-safe: every method may be called concurrently. Byte views stay valid while
// the Checkpoint lives (shards, once opened, stay mapped until destruction).
class Checkpoint {
 public:
  // Opens `dir`. With an index file, parses it and checks that every shard it names exists
  // (NotFound naming the shard and a tensor it should hold) but maps none of them. Without one,
  // maps `model.safetensors`. NotFound listing both names when neither exists.
  static StatusOr<Checkpoint> Open(const std::string& dir);

  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;
  ~Checkpoint();

  const std::string& dir() const;
  // Whether the checkpoint lists a tensor of that name (does not open any shard).
  bool Has(std::string_view name) const;
  // Every tensor name, sorted (does not open any shard).
  std::vector<std::string> TensorNames() const;
  // The shard files, sorted by name (one entry for a single-file checkpoint).
  std::vector<std::string> ShardFiles() const;

  // dtype, shape and byte span of `name`; opens its shard if needed. NotFound for an unknown
  // name; the shard's open errors otherwise. When a shard is opened, every tensor the index
  // assigns to it must be present in it (DataLoss naming the tensor and shard otherwise).
  StatusOr<TensorInfo> Info(std::string_view name) const;
  // The raw bytes of `name` inside its mapped shard. Not necessarily aligned to the element size.
  StatusOr<std::span<const uint8_t>> Tensor(std::string_view name) const;
  // `name` converted to f32, row-major.
  StatusOr<std::vector<float>> ReadFloat(std::string_view name) const;

  // How many shard files are mapped now (tests use it to prove laziness).
  size_t ShardsOpened() const;

 private:
  struct Impl;
  explicit Checkpoint(std::unique_ptr<Impl> impl);
  // The open shard holding `name` and its entry there.
  StatusOr<std::pair<const SafetensorsFile*, const TensorInfo*>> Locate(
      std::string_view name) const;

  std::unique_ptr<Impl> impl_;
};

}  // namespace kubemoe
