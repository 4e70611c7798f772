// Reading one Hugging Face safetensors file.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON header, then the data buffer.
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets are
// relative to the start of the data buffer) and may hold "__metadata__": {string: string}.
//
// ParseSafetensorsHeader() is a pure function over bytes (the fuzz target and tests call it);
// SafetensorsFile maps a file read-only and hands out views of its tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "model/dtype.h"

namespace kubemoe {

// Headers larger than this are rejected as corrupt (the Python package uses the same bound).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull * 1000 * 1000;

// One tensor entry of a header. The byte span [begin, end) is relative to the data buffer.
struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;

  uint64_t num_bytes() const { return end - begin; }
  // Product of the dimensions (1 for a scalar). Validated headers guarantee it does not overflow.
  uint64_t num_elements() const;
};

// A validated header.
struct SafetensorsHeader {
  uint64_t header_bytes = 0;        // N, the JSON length including any padding
  uint64_t data_offset = 0;         // 8 + N: where the data buffer starts in the file
  uint64_t data_bytes = 0;          // file size - data_offset
  std::vector<TensorInfo> tensors;  // sorted by name, names unique
  std::map<std::string, std::string> metadata;

  // The entry named `name`, or nullptr.
  const TensorInfo* Find(std::string_view name) const;
};

// Parses and validates the header at the start of a safetensors file.
// `prefix` holds the first bytes of the file (at least 8 + N of them; the whole file is fine) and
// `file_size` is the size of the whole file. `source` (usually the path) is named in every error.
// Checks: N is at most kMaxSafetensorsHeaderBytes and 8 + N <= file_size; the header is a JSON
// object without duplicate keys; each tensor entry has exactly dtype (string), shape (array of
// non-negative integers) and data_offsets (two integers, begin <= end) and nothing else;
// elements x dtype size == end - begin without overflow; end lies within the data buffer; no two
// non-empty tensors overlap; "__metadata__" is an object of strings (or null). Gaps between tensors
// are allowed: every tensor's own span is checked, so a gap cannot make a read go astray.
// Errors: DataLoss for truncated or corrupt input, InvalidArgument for a well-formed tensor of a
// dtype kubemoe does not support (only F32, BF16, F16 are). Messages name `source` and the tensor.
// Never crashes or throws, whatever the bytes.
StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::span<const uint8_t> prefix,
                                                   uint64_t file_size, std::string_view source);

// A safetensors file mapped read-only (PROT_READ, MAP_PRIVATE). Move-only; unmaps on destruction.
// Views returned by TensorBytes() are valid while this object lives. The file must not be
// truncated by someone else while it is mapped (the kernel would raise SIGBUS on access).
// Thread-safe for concurrent const use.
class SafetensorsFile {
 public:
  // Opens, maps and validates `path`. NotFound if it does not exist; DataLoss / InvalidArgument
  // as ParseSafetensorsHeader.
  static StatusOr<SafetensorsFile> Open(const std::string& path);

  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  // All tensors, sorted by name.
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  // The entry named `name`, or nullptr.
  const TensorInfo* Find(std::string_view name) const { return header_.Find(name); }

  // The raw little-endian bytes of `info`, which must come from this file's tensors().
  // The view is not necessarily aligned to the element size: copy with memcpy, or use ReadFloat.
  std::span<const uint8_t> Bytes(const TensorInfo& info) const;
  // The raw bytes of the tensor named `name`; NotFound naming the tensor and file otherwise.
  StatusOr<std::span<const uint8_t>> TensorBytes(std::string_view name) const;
  // The tensor named `name` converted to f32 (BF16/F16 are widened exactly), row-major.
  StatusOr<std::vector<float>> ReadFloat(std::string_view name) const;

 private:
  SafetensorsFile() = default;
  void Unmap();

  std::string path_;
  SafetensorsHeader header_;
  const uint8_t* base_ = nullptr;  // start of the mapping (the whole file)
  size_t mapped_size_ = 0;
};

// Widens the raw bytes of a tensor of `dtype` to f32. `bytes.size()` must be a multiple of the
// dtype size; the bytes need not be aligned.
std::vector<float> BytesToFloat(DType dtype, std::span<const uint8_t> bytes);

}  // namespace kubemoe
