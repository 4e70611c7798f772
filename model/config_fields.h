// Internal to model/config*.cc: typed reads of config.json fields, each error naming the field
// and the file. Not a public API.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "common/status.h"

namespace kubemoe::config_internal {

using nlohmann::json;

constexpr int64_t kMaxDim = int64_t{1} << 32;  // generous upper bound for any size field

// Reads typed fields from one JSON object, naming the field and the source in every error.
class FieldReader {
 public:
  FieldReader(const json& object, std::string_view source, std::string prefix = "")
      : object_(object), source_(source), prefix_(std::move(prefix)) {}

  Status Int(const char* name, int64_t* out, int64_t min, int64_t max = kMaxDim) const {
    const json* value = Find(name);
    if (value == nullptr) return Status::Ok();
    if (!value->is_number_integer())
      return Error(name, "must be an integer, got " + Describe(*value));
    const int64_t v = value->is_number_unsigned() && value->get<uint64_t>() > uint64_t(INT64_MAX)
                          ? INT64_MAX
                          : value->get<int64_t>();
    if (v < min || v > max) {
      return Error(name, "must be in [" + std::to_string(min) + ", " + std::to_string(max) +
                             "], got " + std::to_string(v));
    }
    *out = v;
    return Status::Ok();
  }

  // An integer that may be null; `null_value` is what null means for a plain int64 field.
  Status NullableInt(const char* name, int64_t* out, int64_t null_value, int64_t min) const {
    const json* value = Find(name);
    if (value != nullptr && value->is_null()) {
      *out = null_value;
      return Status::Ok();
    }
    return Int(name, out, min);
  }

  Status OptionalInt(const char* name, std::optional<int64_t>* out, int64_t min) const {
    const json* value = Find(name);
    if (value == nullptr) return Status::Ok();
    if (value->is_null()) {
      out->reset();
      return Status::Ok();
    }
    int64_t v = 0;
    KUBEMOE_RETURN_IF_ERROR(Int(name, &v, min, std::numeric_limits<int64_t>::max()));
    *out = v;
    return Status::Ok();
  }

  Status Double(const char* name, double* out, double min, double max) const {
    const json* value = Find(name);
    if (value == nullptr) return Status::Ok();
    if (!value->is_number()) return Error(name, "must be a number, got " + Describe(*value));
    const double v = value->get<double>();
    if (!std::isfinite(v) || v < min || v > max) {
      std::ostringstream message;
      message << "must be in [" << min << ", " << max << "], got " << v;
      return Error(name, message.str());
    }
    *out = v;
    return Status::Ok();
  }

  Status Bool(const char* name, bool* out) const {
    const json* value = Find(name);
    if (value == nullptr) return Status::Ok();
    if (!value->is_boolean()) return Error(name, "must be true or false, got " + Describe(*value));
    *out = value->get<bool>();
    return Status::Ok();
  }

  Status String(const char* name, std::string* out) const {
    const json* value = Find(name);
    if (value == nullptr) return Status::Ok();
    if (!value->is_string()) return Error(name, "must be a string, got " + Describe(*value));
    *out = value->get<std::string>();
    return Status::Ok();
  }

  // The field's value, or null when absent.
  const json* Find(const char* name) const {
    auto it = object_.find(name);
    return it == object_.end() ? nullptr : &*it;
  }

  // "<source>: field \"<prefix><name>\" <problem>".
  Status Error(const std::string& name, const std::string& problem) const {
    return InvalidArgument(std::string(source_) + ": field \"" + prefix_ + name + "\" " + problem);
  }

  const json& object() const { return object_; }
  std::string_view source() const { return source_; }
  const std::string& prefix() const { return prefix_; }

  // A value's JSON type and text, shortened, for error messages.
  static std::string Describe(const json& value) {
    std::string text = value.dump();
    if (text.size() > 40) text = text.substr(0, 37) + "...";
    return std::string(value.type_name()) + " " + text;
  }

 private:
  const json& object_;
  std::string_view source_;
  std::string prefix_;
};

}  // namespace kubemoe::config_internal
