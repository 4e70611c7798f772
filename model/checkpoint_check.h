// Checks that a checkpoint's tensors are exactly those its config implies (names, shapes and
// supported dtypes), and summarises them for `kubemoe inspect`.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/dtype.h"

namespace kubemoe {

struct CheckpointSummary {
  bool has_weights = false;              // false: the directory holds only config.json
  size_t shard_files = 0;
  size_t tensors = 0;
  uint64_t bytes = 0;                    // sum of tensor byte sizes
  std::map<std::string, size_t> dtypes;  // "BF16" -> tensor count
};

// Opens the checkpoint in `path` (a directory; a config.json file means "no weights") and
// compares it with CheckpointTensors(config). A missing, unexpected or mis-shaped tensor is an
// InvalidArgument error naming it (the first few, with a count of the rest).
StatusOr<CheckpointSummary> CheckCheckpoint(const std::string& path, const ModelConfig& config);

}  // namespace kubemoe
