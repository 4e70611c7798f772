#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "kernels/cpu/convert.h"

namespace kubemoe {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swaps");

namespace {

using nlohmann::json;

// A JSON string or key as it appears in messages (quoted, control characters escaped).
std::string Quoted(std::string_view s) {
  return json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string Where(std::string_view source, std::string_view tensor) {
  return std::string(source) + ": tensor " + Quoted(tensor);
}

// Reads a JSON value that must be a non-negative integer.
StatusOr<uint64_t> NonNegativeInteger(const json& value, const std::string& what) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer()) return DataLoss(what + " is negative (" + value.dump() + ")");
  return DataLoss(what + " must be a non-negative integer, got " +
                  value.dump(-1, ' ', false, json::error_handler_t::replace));
}

// Parses the JSON text, rejecting duplicate keys in any object (nlohmann would keep the last one
// silently, which would hide a corrupt or ambiguous header).
StatusOr<json> ParseStrictJson(std::string_view text, std::string_view source) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.empty() && parsed.is_string() &&
            !open_objects.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
          duplicate = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  try {
    json parsed = json::parse(text.begin(), text.end(), callback);
    if (!duplicate.empty()) {
      return DataLoss(std::string(source) + ": header JSON has the key " + Quoted(duplicate) +
                      " more than once");
    }
    return parsed;
  } catch (const json::exception& e) {
    return DataLoss(std::string(source) + ": header is not valid JSON (" + e.what() + ")");
  } catch (const std::exception& e) {
    return DataLoss(std::string(source) + ": cannot parse header (" + e.what() + ")");
  }
}

uint64_t ElementCount(const std::vector<int64_t>& shape, bool* overflow) {
  *overflow = false;
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  uint64_t count = 1;
  for (int64_t dim : shape) {
    if (__builtin_mul_overflow(count, static_cast<uint64_t>(dim), &count)) {
      *overflow = true;
      return 0;
    }
  }
  return count;
}

// Validates one tensor entry on its own; the caller checks how entries relate to each other.
StatusOr<TensorInfo> ParseTensorEntry(const std::string& name, const json& entry,
                                      uint64_t data_bytes, std::string_view source) {
  const std::string where = Where(source, name);
  if (!entry.is_object()) return DataLoss(where + ": entry must be a JSON object");
  for (const auto& [key, unused] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return DataLoss(where + ": unexpected field " + Quoted(key) +
                      " (expected dtype, shape, data_offsets)");
    }
  }
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(field)) return DataLoss(where + ": missing field \"" + field + "\"");
  }

  TensorInfo info;
  info.name = name;
  const json& dtype = entry["dtype"];
  if (!dtype.is_string()) return DataLoss(where + ": dtype must be a string");
  StatusOr<DType> parsed_dtype = ParseDType(dtype.get<std::string>());
  if (!parsed_dtype.ok()) return InvalidArgument(where + ": " + parsed_dtype.status().message());
  info.dtype = *parsed_dtype;

  const json& shape = entry["shape"];
  if (!shape.is_array()) return DataLoss(where + ": shape must be an array");
  for (size_t i = 0; i < shape.size(); ++i) {
    StatusOr<uint64_t> dim =
        NonNegativeInteger(shape[i], where + ": shape[" + std::to_string(i) + "]");
    if (!dim.ok()) return dim.status();
    if (*dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return DataLoss(where + ": shape[" + std::to_string(i) + "] is too large");
    }
    info.shape.push_back(static_cast<int64_t>(*dim));
  }

  const json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2) {
    return DataLoss(where + ": data_offsets must be an array [begin, end]");
  }
  StatusOr<uint64_t> begin = NonNegativeInteger(offsets[0], where + ": data_offsets[0]");
  if (!begin.ok()) return begin.status();
  StatusOr<uint64_t> end = NonNegativeInteger(offsets[1], where + ": data_offsets[1]");
  if (!end.ok()) return end.status();
  info.begin = *begin;
  info.end = *end;
  if (info.begin > info.end) {
    return DataLoss(where + ": data_offsets begin " + std::to_string(info.begin) +
                    " is after end " + std::to_string(info.end));
  }
  if (info.end > data_bytes) {
    return DataLoss(where + ": data_offsets end " + std::to_string(info.end) +
                    " lies past the data buffer of " + std::to_string(data_bytes) +
                    " bytes (file truncated?)");
  }

  bool overflow = false;
  const uint64_t elements = ElementCount(info.shape, &overflow);
  uint64_t expected_bytes = 0;
  if (overflow || __builtin_mul_overflow(elements, DTypeSize(info.dtype), &expected_bytes)) {
    return DataLoss(where + ": shape is too large (element count overflows)");
  }
  if (expected_bytes != info.num_bytes()) {
    return DataLoss(where + ": shape holds " + std::to_string(elements) + " " +
                    DTypeName(info.dtype) + " elements (" + std::to_string(expected_bytes) +
                    " bytes) but data_offsets span " + std::to_string(info.num_bytes()) + " bytes");
  }
  return info;
}

Status ParseMetadata(const json& value, std::string_view source,
                     std::map<std::string, std::string>* metadata) {
  if (value.is_null()) return Status::Ok();
  if (!value.is_object()) {
    return DataLoss(std::string(source) + ": __metadata__ must be an object of strings");
  }
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      return DataLoss(std::string(source) + ": __metadata__ value for " + Quoted(key) +
                      " must be a string");
    }
    (*metadata)[key] = item.get<std::string>();
  }
  return Status::Ok();
}

}  // namespace

uint64_t TensorInfo::num_elements() const {
  bool overflow = false;
  return ElementCount(shape, &overflow);
}

const TensorInfo* SafetensorsHeader::Find(std::string_view name) const {
  auto it = std::lower_bound(tensors.begin(), tensors.end(), name,
                             [](const TensorInfo& t, std::string_view n) { return t.name < n; });
  return it != tensors.end() && it->name == name ? &*it : nullptr;
}

StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::span<const uint8_t> prefix,
                                                   uint64_t file_size, std::string_view source) {
  const std::string src(source);
  if (file_size < 8 || prefix.size() < 8) {
    return DataLoss(src + ": file is " +
                    std::to_string(std::min<uint64_t>(file_size, prefix.size())) +
                    " bytes, too short for the 8-byte header length (truncated?)");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | prefix[static_cast<size_t>(i)];
  if (n > kMaxSafetensorsHeaderBytes) {
    return DataLoss(src + ": header length " + std::to_string(n) + " exceeds the limit of " +
                    std::to_string(kMaxSafetensorsHeaderBytes) +
                    " bytes (not a safetensors file?)");
  }
  if (n > file_size - 8) {
    return DataLoss(src + ": header length " + std::to_string(n) + " runs past the end of the " +
                    std::to_string(file_size) + "-byte file (truncated?)");
  }
  if (prefix.size() - 8 < n) {
    return DataLoss(src + ": only " + std::to_string(prefix.size() - 8) + " of " +
                    std::to_string(n) + " header bytes are available");
  }

  SafetensorsHeader header;
  header.header_bytes = n;
  header.data_offset = 8 + n;
  header.data_bytes = file_size - header.data_offset;

  const std::string_view text(reinterpret_cast<const char*>(prefix.data() + 8), n);
  StatusOr<json> parsed = ParseStrictJson(text, source);
  if (!parsed.ok()) return parsed.status();
  if (!parsed->is_object()) return DataLoss(src + ": header must be a JSON object");

  for (const auto& [name, entry] : parsed->items()) {
    if (name == "__metadata__") {
      KUBEMOE_RETURN_IF_ERROR(ParseMetadata(entry, source, &header.metadata));
      continue;
    }
    StatusOr<TensorInfo> info = ParseTensorEntry(name, entry, header.data_bytes, source);
    if (!info.ok()) return info.status();
    header.tensors.push_back(std::move(*info));
  }

  // Overlap check: sort the non-empty spans by start; each must start at or after the previous end.
  std::vector<const TensorInfo*> by_offset;
  for (const TensorInfo& t : header.tensors) {
    if (t.num_bytes() > 0) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->name < b->name;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->begin < by_offset[i - 1]->end) {
      return DataLoss(
          Where(source, by_offset[i]->name) + " (bytes " + std::to_string(by_offset[i]->begin) +
          ".." + std::to_string(by_offset[i]->end) + ") overlaps tensor " +
          Quoted(by_offset[i - 1]->name) + " (bytes " + std::to_string(by_offset[i - 1]->begin) +
          ".." + std::to_string(by_offset[i - 1]->end) + ")");
    }
  }
  // JSON objects iterate in key order already; sorting keeps the contract explicit.
  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  return header;
}

std::vector<float> BytesToFloat(DType dtype, std::span<const uint8_t> bytes) {
  const size_t n = bytes.size() / DTypeSize(dtype);
  std::vector<float> out(n);
  if (n == 0) return out;
  if (dtype == DType::kF32) {
    std::memcpy(out.data(), bytes.data(), n * sizeof(float));
    return out;
  }
  // The converters take uint16_t pointers; copy first when the view is not 2-byte aligned.
  std::vector<uint16_t> aligned;
  const uint16_t* halves = nullptr;
  if (reinterpret_cast<uintptr_t>(bytes.data()) % alignof(uint16_t) == 0) {
    halves = reinterpret_cast<const uint16_t*>(bytes.data());
  } else {
    aligned.resize(n);
    std::memcpy(aligned.data(), bytes.data(), n * sizeof(uint16_t));
    halves = aligned.data();
  }
  if (dtype == DType::kBF16) {
    cpu::Bf16ToF32(halves, out.data(), n);
  } else {
    cpu::F16ToF32(halves, out.data(), n);
  }
  return out;
}

StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string message = path + ": cannot open safetensors file: " + std::strerror(err);
    return err == ENOENT ? NotFound(message) : FailedPrecondition(message);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument(path + ": not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return DataLoss(path + ": file is " + std::to_string(size) +
                    " bytes, too short for the 8-byte header length (truncated?)");
  }
  void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (mapping == MAP_FAILED) {
    return FailedPrecondition(path + ": cannot mmap: " + std::strerror(map_errno));
  }

  SafetensorsFile file;
  file.path_ = path;
  file.base_ = static_cast<const uint8_t*>(mapping);
  file.mapped_size_ = size;
  StatusOr<SafetensorsHeader> header =
      ParseSafetensorsHeader(std::span<const uint8_t>(file.base_, size), size, path);
  if (!header.ok()) return header.status();  // `file` unmaps on the way out
  file.header_ = std::move(*header);
  return file;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      header_(std::move(other.header_)),
      base_(std::exchange(other.base_, nullptr)),
      mapped_size_(std::exchange(other.mapped_size_, 0)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    Unmap();
    path_ = std::move(other.path_);
    header_ = std::move(other.header_);
    base_ = std::exchange(other.base_, nullptr);
    mapped_size_ = std::exchange(other.mapped_size_, 0);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() { Unmap(); }

void SafetensorsFile::Unmap() {
  if (base_ != nullptr) ::munmap(const_cast<uint8_t*>(base_), mapped_size_);
  base_ = nullptr;
  mapped_size_ = 0;
}

std::span<const uint8_t> SafetensorsFile::Bytes(const TensorInfo& info) const {
  return {base_ + header_.data_offset + info.begin, info.num_bytes()};
}

StatusOr<std::span<const uint8_t>> SafetensorsFile::TensorBytes(std::string_view name) const {
  const TensorInfo* info = Find(name);
  if (info == nullptr) return NotFound(Where(path_, name) + " does not exist in this file");
  return Bytes(*info);
}

StatusOr<std::vector<float>> SafetensorsFile::ReadFloat(std::string_view name) const {
  const TensorInfo* info = Find(name);
  if (info == nullptr) return NotFound(Where(path_, name) + " does not exist in this file");
  return BytesToFloat(info->dtype, Bytes(*info));
}

}  // namespace kubemoe
