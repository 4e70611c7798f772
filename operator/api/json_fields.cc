#include "operator/api/json_fields.h"

#include <limits>

namespace kubemoe::op::internal {

using nlohmann::json;

namespace {
std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}
}  // namespace

StatusOr<const json*> Object(const json& parent, const std::string& key, const std::string& path) {
  static const json kEmpty = json::object();
  auto it = parent.find(key);
  if (it == parent.end() || it->is_null()) return &kEmpty;
  if (!it->is_object()) return InvalidArgument(Join(path, key) + " must be an object");
  return &*it;
}

Status Int(const json& parent, const std::string& key, const std::string& path, int64_t lo,
           int64_t hi, int64_t& out) {
  auto it = parent.find(key);
  if (it == parent.end() || it->is_null()) return Status::Ok();
  const std::string field = Join(path, key);
  int64_t value = 0;
  if (it->is_number_integer()) {
    if (it->is_number_unsigned() &&
        it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return InvalidArgument(field + " must be <= " + std::to_string(hi));
    }
    value = it->get<int64_t>();
  } else if (it->is_number_float()) {
    // JSON from some clients writes 2.0 for 2; accept only exact integers.
    double d = it->get<double>();
    if (!(d >= -9e15 && d <= 9e15) || static_cast<double>(static_cast<int64_t>(d)) != d) {
      return InvalidArgument(field + " must be an integer");
    }
    value = static_cast<int64_t>(d);
  } else {
    return InvalidArgument(field + " must be an integer, got " + it->dump());
  }
  if (value < lo) {
    return InvalidArgument(field + " must be >= " + std::to_string(lo) + ", got " +
                           std::to_string(value));
  }
  if (value > hi) {
    return InvalidArgument(field + " must be <= " + std::to_string(hi) + ", got " +
                           std::to_string(value));
  }
  out = value;
  return Status::Ok();
}

Status Int32(const json& parent, const std::string& key, const std::string& path, int32_t lo,
             int32_t hi, int32_t& out) {
  int64_t v = out;
  KUBEMOE_RETURN_IF_ERROR(Int(parent, key, path, lo, hi, v));
  out = static_cast<int32_t>(v);
  return Status::Ok();
}

Status RequiredInt32(const json& parent, const std::string& key, const std::string& path,
                     int32_t lo, int32_t hi, int32_t& out) {
  auto it = parent.find(key);
  if (it == parent.end() || it->is_null()) {
    return InvalidArgument(Join(path, key) + " is required");
  }
  return Int32(parent, key, path, lo, hi, out);
}

Status String(const json& parent, const std::string& key, const std::string& path,
              std::string& out) {
  auto it = parent.find(key);
  if (it == parent.end() || it->is_null()) return Status::Ok();
  if (!it->is_string()) return InvalidArgument(Join(path, key) + " must be a string");
  out = it->get<std::string>();
  return Status::Ok();
}

Status StringMap(const json& parent, const std::string& key, const std::string& path,
                 std::map<std::string, std::string>& out) {
  out.clear();
  auto it = parent.find(key);
  if (it == parent.end() || it->is_null()) return Status::Ok();
  const std::string field = Join(path, key);
  if (!it->is_object()) return InvalidArgument(field + " must be a map of strings");
  for (auto kv = it->begin(); kv != it->end(); ++kv) {
    if (!kv.value().is_string()) {
      return InvalidArgument(field + "." + kv.key() + " must be a string");
    }
    out[kv.key()] = kv.value().get<std::string>();
  }
  return Status::Ok();
}

}  // namespace kubemoe::op::internal
