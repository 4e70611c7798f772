// Writing Hugging Face safetensors files and sharded checkpoints.
//
//   SafetensorsWriter writer;
//   writer.AddFloat("model.embed_tokens.weight", DType::kBF16, {vocab, hidden}, values);
//   writer.SetMetadata("format", "pt");
//   Status s = writer.WriteFile(dir + "/model.safetensors");
//   // or: writer.WriteSharded(dir, 5'000'000'000);  // model-00001-of-0000N.safetensors + index
//
// Files are written to a temporary name in the same folder and renamed into place, so a crash
// never leaves a half-written file under the final name.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/dtype.h"

namespace kubemoe {

class SafetensorsWriter {
 public:
  // Adds a tensor from raw little-endian bytes. InvalidArgument (and the tensor is not added) when
  // the name is empty, "__metadata__" or already added, a dimension is negative, or bytes.size()
  // is not elements x dtype size. The first such error is also returned by WriteFile and
  // WriteSharded, so a caller that ignores this result still cannot write a partial checkpoint.
  Status Add(std::string name, DType dtype, std::vector<int64_t> shape, std::vector<uint8_t> bytes);
  // Adds a tensor from f32 values, rounded to `dtype` (nearest-even for BF16 and F16).
  // Errors as Add, with values.size() in place of the byte count.
  Status AddFloat(std::string name, DType dtype, std::vector<int64_t> shape,
                  const std::vector<float>& values);
  // Sets a "__metadata__" entry (written into every file).
  void SetMetadata(std::string key, std::string value);

  // Writes every tensor into one file at `path`.
  Status WriteFile(const std::string& path) const;
  // Writes the checkpoint into folder `dir` (created if missing) the way Hugging Face does: the
  // tensors, in the order they were added, fill a shard until the next one would take it past
  // max_shard_bytes of tensor data, then a new shard starts; a tensor larger than the limit gets a
  // shard of its own. Shards are named model-00001-of-0000N.safetensors and listed in
  // model.safetensors.index.json as {"metadata": {"total_size": bytes}, "weight_map":
  // {tensor: file}}, written last. When everything fits in one shard it writes model.safetensors
  // and no index, as transformers does. A stale index (or model.safetensors) left by an earlier
  // save in the other layout is removed so that Checkpoint::Open sees only the new checkpoint;
  // other stale shard files are left alone (the new index does not name them).
  Status WriteSharded(const std::string& dir, uint64_t max_shard_bytes) const;

  size_t size() const { return tensors_.size(); }

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  // Writes the tensors entries_[i] for i in `which` into `path`.
  Status WriteEntries(const std::vector<size_t>& which, const std::string& path) const;

  std::vector<Entry> tensors_;  // in the order added
  std::set<std::string> names_;
  std::map<std::string, std::string> metadata_;
  Status first_error_;
};

// Writes `contents` to `path` through a temporary file in the same folder, flushed and renamed.
Status WriteFileAtomically(const std::string& path, const std::string& contents);

}  // namespace kubemoe
