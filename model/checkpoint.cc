#include "model/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "common/mutex.h"

namespace kubemoe {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string Quoted(std::string_view s) {
  return json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

bool IsRegularFile(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

StatusOr<std::string> ReadWholeFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path.string() + ": cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return DataLoss(path.string() + ": read error");
  return text.str();
}

}  // namespace

StatusOr<CheckpointIndex> ParseCheckpointIndex(std::string_view text, std::string_view source) {
  const std::string src(source);
  json parsed;
  try {
    parsed = json::parse(text.begin(), text.end());
  } catch (const std::exception& e) {
    return DataLoss(src + ": not valid JSON (" + e.what() + ")");
  }
  if (!parsed.is_object()) return DataLoss(src + ": must be a JSON object");
  auto weight_map = parsed.find("weight_map");
  if (weight_map == parsed.end() || !weight_map->is_object()) {
    return DataLoss(src + ": missing \"weight_map\" object (tensor name -> shard file)");
  }
  CheckpointIndex index;
  for (const auto& [tensor, file] : weight_map->items()) {
    if (!file.is_string()) {
      return DataLoss(src + ": weight_map entry for tensor " + Quoted(tensor) +
                      " must be a file name string");
    }
    std::string name = file.get<std::string>();
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
        name.find('\0') != std::string::npos) {
      return InvalidArgument(src + ": weight_map puts tensor " + Quoted(tensor) + " in " +
                             Quoted(name) + ", which is not a file name in the checkpoint folder");
    }
    index.weight_map.emplace(tensor, std::move(name));
  }
  return index;
}

struct Checkpoint::Impl {
  std::string dir;
  std::vector<std::string> shard_files;                     // sorted
  std::map<std::string, size_t, std::less<>> tensor_shard;  // tensor name -> index in shard_files
  std::vector<std::vector<std::string>> shard_tensors;  // what the index promises each shard holds

  mutable Mutex mu;
  // A slot is filled once and never emptied, so a pointer to an opened file stays valid (and may
  // be used without the lock) for the Checkpoint's lifetime.
  mutable std::vector<std::unique_ptr<SafetensorsFile>> opened KUBEMOE_GUARDED_BY(mu);
};

Checkpoint::Checkpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;
Checkpoint::~Checkpoint() = default;

StatusOr<Checkpoint> Checkpoint::Open(const std::string& dir) {
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  const fs::path root(dir);
  const fs::path index_path = root / kSafetensorsIndexFile;
  const fs::path single_path = root / kSafetensorsSingleFile;

  if (IsRegularFile(index_path)) {
    StatusOr<std::string> text = ReadWholeFile(index_path);
    if (!text.ok()) return text.status();
    StatusOr<CheckpointIndex> index = ParseCheckpointIndex(*text, index_path.string());
    if (!index.ok()) return index.status();
    std::map<std::string, size_t> shard_ids;
    for (const auto& [tensor, file] : index->weight_map) shard_ids.emplace(file, 0);
    for (auto& [file, id] : shard_ids) {
      id = impl->shard_files.size();
      impl->shard_files.push_back(file);
    }
    impl->shard_tensors.resize(impl->shard_files.size());
    for (const auto& [tensor, file] : index->weight_map) {
      const size_t id = shard_ids.at(file);
      if (impl->shard_tensors[id].empty() && !IsRegularFile(root / file)) {
        return NotFound(index_path.string() + ": shard " + Quoted(file) + " (holding tensor " +
                        Quoted(tensor) + ") does not exist in " + dir);
      }
      impl->tensor_shard.emplace(tensor, id);
      impl->shard_tensors[id].push_back(tensor);
    }
    {
      MutexLock lock(&impl->mu);  // not shared yet; taken so the analysis can prove every access
      impl->opened.resize(impl->shard_files.size());
    }
    return Checkpoint(std::move(impl));
  }

  if (IsRegularFile(single_path)) {
    StatusOr<SafetensorsFile> file = SafetensorsFile::Open(single_path.string());
    if (!file.ok()) return file.status();
    impl->shard_files.push_back(kSafetensorsSingleFile);
    impl->shard_tensors.emplace_back();
    for (const TensorInfo& t : file->tensors()) {
      impl->tensor_shard.emplace(t.name, 0);
      impl->shard_tensors[0].push_back(t.name);
    }
    {
      MutexLock lock(&impl->mu);
      impl->opened.push_back(std::make_unique<SafetensorsFile>(std::move(*file)));
    }
    return Checkpoint(std::move(impl));
  }

  return NotFound("no checkpoint in " + dir + ": looked for " + kSafetensorsIndexFile + " and " +
                  kSafetensorsSingleFile);
}

const std::string& Checkpoint::dir() const { return impl_->dir; }

bool Checkpoint::Has(std::string_view name) const {
  return impl_->tensor_shard.find(name) != impl_->tensor_shard.end();
}

std::vector<std::string> Checkpoint::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(impl_->tensor_shard.size());
  for (const auto& [name, shard] : impl_->tensor_shard) names.push_back(name);
  return names;  // std::map iterates in sorted order
}

std::vector<std::string> Checkpoint::ShardFiles() const { return impl_->shard_files; }

size_t Checkpoint::ShardsOpened() const {
  MutexLock lock(&impl_->mu);
  size_t count = 0;
  for (const auto& file : impl_->opened) count += file != nullptr;
  return count;
}

StatusOr<std::pair<const SafetensorsFile*, const TensorInfo*>> Checkpoint::Locate(
    std::string_view name) const {
  auto it = impl_->tensor_shard.find(name);
  if (it == impl_->tensor_shard.end()) {
    return NotFound("tensor " + Quoted(name) + " is not in the checkpoint at " + impl_->dir);
  }
  const size_t id = it->second;
  const SafetensorsFile* file = nullptr;
  {
    MutexLock lock(&impl_->mu);
    if (impl_->opened[id] == nullptr) {
      const std::string path = (fs::path(impl_->dir) / impl_->shard_files[id]).string();
      StatusOr<SafetensorsFile> opened = SafetensorsFile::Open(path);
      if (!opened.ok()) return opened.status();
      // Keep the shard only if it holds everything the index promised, so a bad shard fails the
      // same way on every access instead of on some tensors only.
      for (const std::string& tensor : impl_->shard_tensors[id]) {
        if (opened->Find(tensor) == nullptr) {
          return DataLoss(path + ": " + kSafetensorsIndexFile + " says tensor " + Quoted(tensor) +
                          " is in this shard, but it is not");
        }
      }
      impl_->opened[id] = std::make_unique<SafetensorsFile>(std::move(*opened));
    }
    file = impl_->opened[id].get();
  }
  return std::make_pair(file, file->Find(name));
}

StatusOr<TensorInfo> Checkpoint::Info(std::string_view name) const {
  auto located = Locate(name);
  if (!located.ok()) return located.status();
  return *located->second;
}

StatusOr<std::span<const uint8_t>> Checkpoint::Tensor(std::string_view name) const {
  auto located = Locate(name);
  if (!located.ok()) return located.status();
  return located->first->Bytes(*located->second);
}

StatusOr<std::vector<float>> Checkpoint::ReadFloat(std::string_view name) const {
  auto located = Locate(name);
  if (!located.ok()) return located.status();
  return BytesToFloat(located->second->dtype, located->first->Bytes(*located->second));
}

}  // namespace kubemoe
