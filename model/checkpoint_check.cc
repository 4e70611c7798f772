#include "model/checkpoint_check.h"

#include <filesystem>
#include <set>

#include "model/checkpoint.h"
#include "model/tensor_names.h"

namespace kubemoe {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

StatusOr<CheckpointSummary> CheckCheckpoint(const std::string& path, const ModelConfig& config) {
  namespace fs = std::filesystem;
  CheckpointSummary summary;
  std::error_code error;
  if (!fs::is_directory(path, error) ||
      (!fs::exists(fs::path(path) / kSafetensorsSingleFile, error) &&
       !fs::exists(fs::path(path) / kSafetensorsIndexFile, error))) {
    return summary;  // config only
  }
  StatusOr<Checkpoint> checkpoint = Checkpoint::Open(path);
  if (!checkpoint.ok()) return checkpoint.status();
  summary.has_weights = true;
  summary.shard_files = checkpoint->ShardFiles().size();

  std::vector<std::string> problems;
  std::set<std::string> expected_names;
  for (const TensorSpec& spec : CheckpointTensors(config)) {
    expected_names.insert(spec.name);
    StatusOr<TensorInfo> info = checkpoint->Info(spec.name);
    if (!info.ok()) {
      if (info.status().code() != StatusCode::kNotFound) return info.status();
      problems.push_back("missing tensor " + spec.name + " " + ShapeString(spec.shape));
      continue;
    }
    if (info->shape != spec.shape) {
      problems.push_back("tensor " + spec.name + " has shape " + ShapeString(info->shape) +
                         ", config implies " + ShapeString(spec.shape));
    }
    ++summary.tensors;
    summary.bytes += info->num_bytes();
    ++summary.dtypes[DTypeName(info->dtype)];
  }
  for (const std::string& name : checkpoint->TensorNames()) {
    if (!expected_names.contains(name)) problems.push_back("unexpected tensor " + name);
  }
  if (!problems.empty()) {
    std::string message = path + ": checkpoint does not match its config.json: " + problems[0];
    for (size_t i = 1; i < problems.size() && i < 5; ++i) message += "; " + problems[i];
    if (problems.size() > 5) message += "; and " + std::to_string(problems.size() - 5) + " more";
    return InvalidArgument(message);
  }
  return summary;
}

}  // namespace kubemoe
