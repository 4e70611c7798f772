#include "model/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <span>
#include <utility>

#include "model/checkpoint.h"
#include "model/safetensors.h"

namespace kubemoe {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

using Piece = std::span<const uint8_t>;

std::string ErrnoText(int err) { return std::strerror(err); }

// Writes the pieces in order to a fresh temporary file beside `path`, fsyncs it and renames it over
// `path`. On any failure the temporary file is removed and `path` is left as it was.
Status WritePiecesAtomically(const std::string& path, const std::vector<Piece>& pieces) {
  static std::atomic<uint64_t> counter{0};
  const std::string temp =
      path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) return FailedPrecondition(path + ": cannot create " + temp + ": " + ErrnoText(errno));
  auto fail = [&](const std::string& what) {
    const std::string reason = ErrnoText(errno);
    ::close(fd);
    ::unlink(temp.c_str());
    return FailedPrecondition(path + ": " + what + ": " + reason);
  };
  for (Piece piece : pieces) {
    const uint8_t* p = piece.data();
    size_t left = piece.size();
    while (left > 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return fail("write failed");
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  if (::fsync(fd) != 0) return fail("fsync failed");
  if (::close(fd) != 0) {
    const std::string reason = ErrnoText(errno);
    ::unlink(temp.c_str());
    return FailedPrecondition(path + ": close failed: " + reason);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string reason = ErrnoText(errno);
    ::unlink(temp.c_str());
    return FailedPrecondition(path + ": rename from " + temp + " failed: " + reason);
  }
  return Status::Ok();
}

Piece AsPiece(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Hugging Face shard naming: model-00001-of-00003.safetensors.
std::string ShardName(size_t index, size_t count) {
  char name[64];
  std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return name;
}

Status RemoveIfPresent(const fs::path& path) {
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) return FailedPrecondition(path.string() + ": cannot remove stale file: " + ec.message());
  return Status::Ok();
}

}  // namespace

Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  return WritePiecesAtomically(path, {AsPiece(contents)});
}

Status SafetensorsWriter::Add(std::string name, DType dtype, std::vector<int64_t> shape,
                              std::vector<uint8_t> bytes) {
  Status status;
  uint64_t elements = 1;
  bool overflow = false;
  for (int64_t dim : shape) {
    if (dim < 0) {
      status =
          InvalidArgument("tensor \"" + name + "\": negative dimension " + std::to_string(dim));
      break;
    }
    overflow |= __builtin_mul_overflow(elements, static_cast<uint64_t>(dim), &elements);
  }
  if (!status.ok()) {
    // reported below
  } else if (name.empty() || name == "__metadata__") {
    status = InvalidArgument("tensor name \"" + name + "\" is reserved or empty");
  } else if (names_.count(name) != 0) {
    status = InvalidArgument("tensor \"" + name + "\" was added twice");
  } else if (overflow || elements > bytes.size() / DTypeSize(dtype) ||
             elements * DTypeSize(dtype) != bytes.size()) {
    status = InvalidArgument("tensor \"" + name + "\": shape needs " +
                             (overflow ? std::string("too many") : std::to_string(elements)) + " " +
                             DTypeName(dtype) + " elements but " + std::to_string(bytes.size()) +
                             " bytes were given");
  }
  if (!status.ok()) {
    if (first_error_.ok()) first_error_ = status;
    return status;
  }
  names_.insert(name);
  tensors_.push_back(Entry{std::move(name), dtype, std::move(shape), std::move(bytes)});
  return Status::Ok();
}

Status SafetensorsWriter::AddFloat(std::string name, DType dtype, std::vector<int64_t> shape,
                                   const std::vector<float>& values) {
  std::vector<uint8_t> bytes(values.size() * DTypeSize(dtype));
  if (dtype == DType::kF32) {
    if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  } else {
    for (size_t i = 0; i < values.size(); ++i) {
      const uint16_t half = dtype == DType::kBF16 ? FloatToBf16(values[i]) : FloatToF16(values[i]);
      std::memcpy(&bytes[2 * i], &half, 2);  // little-endian host (checked in safetensors.cc)
    }
  }
  return Add(std::move(name), dtype, std::move(shape), std::move(bytes));
}

void SafetensorsWriter::SetMetadata(std::string key, std::string value) {
  metadata_[std::move(key)] = std::move(value);
}

Status SafetensorsWriter::WriteEntries(const std::vector<size_t>& which,
                                       const std::string& path) const {
  // Wider dtypes first (then by name), as the Python package does: every tensor then starts at an
  // offset aligned to its element size, since the data buffer itself starts 8-byte aligned.
  std::vector<size_t> order = which;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const Entry& x = tensors_[a];
    const Entry& y = tensors_[b];
    if (DTypeSize(x.dtype) != DTypeSize(y.dtype)) return DTypeSize(x.dtype) > DTypeSize(y.dtype);
    return x.name < y.name;
  });

  json header = json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  std::vector<Piece> pieces;
  pieces.reserve(order.size() + 2);
  pieces.emplace_back();  // length + header, filled below
  for (size_t i : order) {
    const Entry& t = tensors_[i];
    header[t.name] = {{"dtype", DTypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
    pieces.emplace_back(t.bytes.data(), t.bytes.size());
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const std::exception& e) {  // e.g. a tensor name that is not valid UTF-8
    return InvalidArgument(path + ": cannot encode header: " + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // pad so the data buffer starts 8-byte aligned
  std::string prefix(8, '\0');
  for (int b = 0; b < 8; ++b)
    prefix[b] = static_cast<char>((uint64_t{text.size()} >> (8 * b)) & 0xff);
  prefix += text;
  pieces[0] = AsPiece(prefix);
  return WritePiecesAtomically(path, pieces);
}

Status SafetensorsWriter::WriteFile(const std::string& path) const {
  KUBEMOE_RETURN_IF_ERROR(first_error_);
  std::vector<size_t> all(tensors_.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  return WriteEntries(all, path);
}

Status SafetensorsWriter::WriteSharded(const std::string& dir, uint64_t max_shard_bytes) const {
  KUBEMOE_RETURN_IF_ERROR(first_error_);
  if (max_shard_bytes == 0) return InvalidArgument("max_shard_bytes must be positive");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return FailedPrecondition(dir + ": cannot create folder: " + ec.message());
  const fs::path root(dir);

  // The split huggingface_hub makes: tensors in order fill the current shard until the next one
  // would tip it over the limit; a tensor larger than the limit gets a shard of its own at once
  // while the current shard keeps filling.
  std::vector<std::vector<size_t>> shards;
  std::vector<size_t> current;
  uint64_t current_bytes = 0;
  uint64_t total = 0;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const uint64_t size = tensors_[i].bytes.size();
    total += size;
    if (size > max_shard_bytes) {
      shards.push_back({i});
      continue;
    }
    if (current_bytes + size > max_shard_bytes) {
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(i);
    current_bytes += size;
  }
  if (!current.empty()) shards.push_back(std::move(current));
  if (shards.size() <= 1) {
    KUBEMOE_RETURN_IF_ERROR(WriteEntries(shards.empty() ? std::vector<size_t>{} : shards[0],
                                         (root / kSafetensorsSingleFile).string()));
    return RemoveIfPresent(root / kSafetensorsIndexFile);
  }

  json weight_map = json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string name = ShardName(s, shards.size());
    KUBEMOE_RETURN_IF_ERROR(WriteEntries(shards[s], (root / name).string()));
    for (size_t i : shards[s]) weight_map[tensors_[i].name] = name;
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  KUBEMOE_RETURN_IF_ERROR(
      WriteFileAtomically((root / kSafetensorsIndexFile).string(), index.dump(2) + "\n"));
  return RemoveIfPresent(root / kSafetensorsSingleFile);
}

}  // namespace kubemoe
