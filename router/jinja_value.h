// Internal to the Jinja subset: the values a template computes with (JSON values, jinja2's
// Undefined and the loop object) and the operations on them, with Python's semantics. Every
// operation returns InvalidArgument "chat template line N: ..." where jinja2 would fail or where
// we do not reproduce what it would do.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"

namespace kubemoe::router::jinja {

struct Value {
  enum class Kind { kUndefined, kJson, kLoop };
  Kind kind = Kind::kUndefined;
  // Keeps *ref alive when the value was computed during the render; null for values that live
  // in the context or the template.
  std::shared_ptr<const nlohmann::json> owner;
  const nlohmann::json* ref = nullptr;
  int64_t index0 = 0, length = 0;  // kLoop
  std::string name;                // kUndefined: what was looked up, for error messages

  bool undefined() const { return kind == Kind::kUndefined; }
  bool is_json() const { return kind == Kind::kJson; }
  const nlohmann::json& j() const { return *ref; }
};

Value Undefined(std::string name);
Value Own(nlohmann::json j);
Value Ref(const nlohmann::json* j, std::shared_ptr<const nlohmann::json> owner);

// Integers and booleans (Python's bool is an int) that fit in int64.
bool IntLike(const Value& v);
int64_t AsInt(const nlohmann::json& j);
std::string TypeName(const Value& v);
bool Truthy(const Value& v);
// Nodes plus string bytes of `j`; counting stops once past `limit`.
size_t ApproxSize(const nlohmann::json& j, size_t limit);

Status LineError(int line, const std::string& what);

// Python's str(): strings, integers, True/False, None; "" for Undefined.
Status ToStr(int line, const Value& v, std::string* out);
// x.name and x[key], as jinja2's sandbox looks them up.
Status GetAttr(int line, const Value& base, const std::string& name, Value* out);
Status GetItem(int line, const Value& base, const Value& key, Value* out);
// + - * % ~; values built may not exceed `max_size` (bytes of strings, nodes of lists).
Status Arithmetic(int line, const std::string& op, const Value& a, const Value& b, size_t max_size,
                  Value* out);
// == != < > <= >= in, not in.
Status Compare(int line, const std::string& op, const Value& a, const Value& b, bool* out);
Status ApplyTest(int line, const std::string& test, bool negate, const Value& v, bool* out);
Status ApplyFilter(int line, const std::string& filter, const Value& v, Value* out);

}  // namespace kubemoe::router::jinja
