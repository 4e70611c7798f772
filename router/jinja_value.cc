// Values of the Jinja subset and the operations on them, with Python's semantics where we
// reproduce them and an InvalidArgument naming the construct where we do not.
#include "router/jinja_value.h"

#include <algorithm>
#include <set>

#include "router/jinja_ast.h"

namespace kubemoe::router::jinja {

using nlohmann::json;

namespace {

// Python method names: jinja2 looks attributes up on the Python object first, so `x.items` on a
// dict is the method, not the key. We refuse those names rather than guess.
const std::set<std::string, std::less<>> kDictMethods = {
    "clear", "copy",    "fromkeys",   "get",    "items", "keys",
    "pop",   "popitem", "setdefault", "update", "values"};
const std::set<std::string, std::less<>> kListMethods = {"append", "clear",   "copy",   "count",
                                                         "extend", "index",   "insert", "pop",
                                                         "remove", "reverse", "sort"};

bool IntLike(const json& j) { return j.is_number_integer() || j.is_boolean(); }

// Python's == on JSON values: bools are integers (True == 1), containers compare element-wise.
bool PyEqual(const json& a, const json& b) {
  bool a_num = a.is_number() || a.is_boolean(), b_num = b.is_number() || b.is_boolean();
  if (a_num || b_num) {
    if (!a_num || !b_num) return false;
    if (a.is_number_float() || b.is_number_float()) {
      return (a.is_boolean() ? AsInt(a) : a.get<double>()) ==
             (b.is_boolean() ? AsInt(b) : b.get<double>());
    }
    if (a.is_number_unsigned() && b.is_number_unsigned())
      return a.get<uint64_t>() == b.get<uint64_t>();
    auto big = [](const json& j) {
      return j.is_number_unsigned() && j.get<uint64_t>() > INT64_MAX;
    };
    if (big(a) || big(b)) return false;
    return AsInt(a) == AsInt(b);
  }
  if (a.type() != b.type()) return false;
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!PyEqual(a[i], b[i])) return false;
    }
    return true;
  }
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto it = a.begin(); it != a.end(); ++it) {
      auto other = b.find(it.key());
      if (other == b.end() || !PyEqual(*it, *other)) return false;
    }
    return true;
  }
  return a == b;
}

size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

Status CheckSize(int line, size_t size, size_t max_size) {
  if (size > max_size) {
    return LineError(
        line, "a value built by the template exceeds " + std::to_string(max_size) + " bytes");
  }
  return Status::Ok();
}

Status GetKey(int line, const Value& base, const std::string& key, Value* out) {
  auto found = base.j().find(key);
  if (found != base.j().end()) {
    *out = Ref(&*found, base.owner);
  } else if (kDictMethods.count(key)) {
    return LineError(line, "'" + key + "' names a dict method in jinja2; not supported");
  } else {
    *out = Undefined(key);
  }
  return Status::Ok();
}

// Python's sequence * n: n copies (none when n <= 0).
Status Repeat(int line, const Value& seq, const Value& times, size_t max_size, Value* out) {
  if (!seq.is_json() || !(seq.j().is_string() || seq.j().is_array())) {
    return LineError(line, "'*' between a " + TypeName(seq) + " and an integer is not supported");
  }
  int64_t n = std::max<int64_t>(AsInt(times.j()), 0);
  size_t unit = ApproxSize(seq.j(), max_size);
  if (n > 0 && static_cast<uint64_t>(n) > max_size / unit) {
    return LineError(line, "'*' result exceeds " + std::to_string(max_size) + " bytes");
  }
  json result = seq.j().is_string() ? json(std::string()) : json::array();
  for (int64_t i = 0; i < n; ++i) {
    if (result.is_string()) {
      result.get_ref<std::string&>() += seq.j().get_ref<const std::string&>();
    } else {
      for (const auto& item : seq.j()) result.push_back(item);
    }
  }
  *out = Own(std::move(result));
  return Status::Ok();
}

}  // namespace

Value Undefined(std::string name) {
  Value v;
  v.name = std::move(name);
  return v;
}
Value Own(json j) {
  Value v;
  v.kind = Value::Kind::kJson;
  v.owner = std::make_shared<const json>(std::move(j));
  v.ref = v.owner.get();
  return v;
}
Value Ref(const json* j, std::shared_ptr<const json> owner) {
  Value v;
  v.kind = Value::Kind::kJson;
  v.owner = std::move(owner);
  v.ref = j;
  return v;
}

int64_t AsInt(const json& j) {
  if (j.is_boolean()) return j.get<bool>() ? 1 : 0;
  if (j.is_number_unsigned()) return static_cast<int64_t>(j.get<uint64_t>());
  return j.get<int64_t>();
}
bool IntLike(const Value& v) {
  return v.is_json() && IntLike(v.j()) &&
         !(v.j().is_number_unsigned() && v.j().get<uint64_t>() > INT64_MAX);
}

std::string TypeName(const Value& v) {
  if (v.undefined()) return "undefined value '" + v.name + "'";
  if (v.kind == Value::Kind::kLoop) return "loop";
  switch (v.j().type()) {
    case json::value_t::null:
      return "none";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::string:
      return "string";
    case json::value_t::array:
      return "list";
    case json::value_t::object:
      return "mapping";
    case json::value_t::number_float:
      return "float";
    default:
      return "integer";
  }
}

bool Truthy(const Value& v) {
  if (v.undefined()) return false;
  if (v.kind == Value::Kind::kLoop) return true;
  const json& j = v.j();
  switch (j.type()) {
    case json::value_t::null:
      return false;
    case json::value_t::boolean:
      return j.get<bool>();
    case json::value_t::string:
      return !j.get_ref<const std::string&>().empty();
    case json::value_t::array:
    case json::value_t::object:
      return !j.empty();
    case json::value_t::number_float:
      return j.get<double>() != 0.0;
    default:
      return AsInt(j) != 0;
  }
}

// Nodes plus string bytes of `j`; counting stops once past `limit` (so it costs O(limit) at most).
size_t ApproxSize(const json& j, size_t limit) {
  size_t total = 0;
  std::vector<const json*> stack{&j};
  while (!stack.empty() && total <= limit) {
    const json* x = stack.back();
    stack.pop_back();
    total += 1;
    if (x->is_string()) total += x->get_ref<const std::string&>().size();
    if (x->is_structured()) {
      for (const auto& child : *x) stack.push_back(&child);
    }
  }
  return total;
}

Status LineError(int line, const std::string& what) {
  return InvalidArgument("chat template line " + std::to_string(line) + ": " + what);
}

// Python's str() of a value, where we reproduce it exactly.
Status ToStr(int line, const Value& v, std::string* out) {
  if (v.undefined()) {
    out->clear();
    return Status::Ok();
  }
  if (v.is_json()) {
    const json& j = v.j();
    if (j.is_string()) {
      *out = j.get<std::string>();
      return Status::Ok();
    }
    if (j.is_boolean()) {
      *out = j.get<bool>() ? "True" : "False";
      return Status::Ok();
    }
    if (j.is_null()) {
      *out = "None";
      return Status::Ok();
    }
    if (j.is_number_integer()) {
      *out = j.dump();
      return Status::Ok();
    }
  }
  return LineError(line, "converting a " + TypeName(v) + " to text is not supported");
}

Status GetAttr(int line, const Value& base, const std::string& name, Value* out) {
  if (base.kind == Value::Kind::kLoop) {
    const int64_t i = base.index0, n = base.length;
    if (name == "index0")
      *out = Own(i);
    else if (name == "index")
      *out = Own(i + 1);
    else if (name == "revindex0")
      *out = Own(n - i - 1);
    else if (name == "revindex")
      *out = Own(n - i);
    else if (name == "first")
      *out = Own(i == 0);
    else if (name == "last")
      *out = Own(i == n - 1);
    else if (name == "length")
      *out = Own(n);
    else
      return LineError(line, "loop." + name + " is not supported");
    return Status::Ok();
  }
  if (base.undefined()) return LineError(line, "'" + base.name + "' is undefined");
  if (!base.j().is_object()) {
    return LineError(line, "attribute access on a " + TypeName(base) + " is not supported");
  }
  return GetKey(line, base, name, out);
}

Status GetItem(int line, const Value& base, const Value& key, Value* out) {
  if (base.kind == Value::Kind::kLoop && key.is_json() && key.j().is_string()) {
    return GetAttr(line, base, key.j().get<std::string>(), out);
  }
  if (base.undefined()) return LineError(line, "'" + base.name + "' is undefined");
  if (!base.is_json() || !key.is_json()) {
    return LineError(
        line, "indexing a " + TypeName(base) + " with a " + TypeName(key) + " is not supported");
  }
  const json& b = base.j();
  const json& k = key.j();
  if (b.is_object()) {
    if (k.is_string()) return GetKey(line, base, k.get<std::string>(), out);
    *out = Undefined("[non-string key]");
    return Status::Ok();
  }
  if (b.is_array() && IntLike(key)) {
    int64_t i = AsInt(k), n = static_cast<int64_t>(b.size());
    if (i < 0) i += n;
    *out = i >= 0 && i < n ? Ref(&b[static_cast<size_t>(i)], base.owner) : Undefined("[index]");
    return Status::Ok();
  }
  if (b.is_array() && k.is_string() && !kListMethods.count(k.get<std::string>())) {
    *out = Undefined(k.get<std::string>());
    return Status::Ok();
  }
  if (b.is_null() || b.is_boolean() || b.is_number_integer()) {
    *out = Undefined("[item]");  // jinja2 turns the TypeError into Undefined
    return Status::Ok();
  }
  return LineError(
      line, "indexing a " + TypeName(base) + " with a " + TypeName(key) + " is not supported");
}

Status Arithmetic(int line, const std::string& op, const Value& a, const Value& b, size_t max_size,
                  Value* out) {
  if (op == "~") {
    std::string x, y;
    KUBEMOE_RETURN_IF_ERROR(ToStr(line, a, &x));
    KUBEMOE_RETURN_IF_ERROR(ToStr(line, b, &y));
    KUBEMOE_RETURN_IF_ERROR(CheckSize(line, x.size() + y.size(), max_size));
    *out = Own(x + y);
    return Status::Ok();
  }
  if (IntLike(a) && IntLike(b)) {
    int64_t x = AsInt(a.j()), y = AsInt(b.j()), r = 0;
    bool overflow = false;
    if (op == "+") overflow = __builtin_add_overflow(x, y, &r);
    if (op == "-") overflow = __builtin_sub_overflow(x, y, &r);
    if (op == "*") overflow = __builtin_mul_overflow(x, y, &r);
    if (op == "%") {
      if (y == 0) return LineError(line, "integer modulo by zero");
      r = y == -1 ? 0 : x % y;
      if (r != 0 && ((r < 0) != (y < 0))) r += y;  // Python: the sign of the divisor
    }
    if (overflow) return LineError(line, "integer overflow in '" + op + "'");
    *out = Own(r);
    return Status::Ok();
  }
  if (op == "*" && (IntLike(a) || IntLike(b)))
    return Repeat(line, IntLike(a) ? b : a, IntLike(a) ? a : b, max_size, out);
  if (op == "+" && a.is_json() && b.is_json()) {
    if (a.j().is_string() && b.j().is_string()) {
      KUBEMOE_RETURN_IF_ERROR(CheckSize(
          line,
          a.j().get_ref<const std::string&>().size() + b.j().get_ref<const std::string&>().size(),
          max_size));
      *out = Own(a.j().get<std::string>() + b.j().get<std::string>());
      return Status::Ok();
    }
    if (a.j().is_array() && b.j().is_array()) {
      KUBEMOE_RETURN_IF_ERROR(
          CheckSize(line, ApproxSize(a.j(), max_size) + ApproxSize(b.j(), max_size), max_size));
      json joined = a.j();
      for (const auto& item : b.j()) joined.push_back(item);
      *out = Own(std::move(joined));
      return Status::Ok();
    }
  }
  return LineError(line, "'" + op + "' between a " + TypeName(a) + " and a " + TypeName(b) +
                             " is not supported");
}

Status Compare(int line, const std::string& op, const Value& a, const Value& b, bool* out) {
  if (op == "==" || op == "!=") {
    bool eq;
    if (a.undefined() || b.undefined()) {
      eq = a.undefined() && b.undefined();
    } else if (!a.is_json() || !b.is_json()) {
      return LineError(line, "comparing a loop object is not supported");
    } else {
      eq = PyEqual(a.j(), b.j());
    }
    *out = (op == "==") == eq;
    return Status::Ok();
  }
  if (op == "in" || op == "not in") {
    bool found = false;
    if (b.undefined()) {
      found = false;
    } else if (!b.is_json() || a.kind == Value::Kind::kLoop) {
      return LineError(line, "'in' with a loop object is not supported");
    } else if (b.j().is_string()) {
      if (!a.is_json() || !a.j().is_string()) {
        return LineError(line, "'in <string>' needs a string on the left, not a " + TypeName(a));
      }
      found = b.j().get_ref<const std::string&>().find(a.j().get_ref<const std::string&>()) !=
              std::string::npos;
    } else if (b.j().is_array()) {
      for (const auto& item : b.j()) found = found || (a.is_json() && PyEqual(a.j(), item));
    } else if (b.j().is_object()) {
      if (a.is_json() && (a.j().is_array() || a.j().is_object())) {
        return LineError(line,
                         "'in <mapping>' with a " + TypeName(a) + " key (unhashable in Python)");
      }
      found = a.is_json() && a.j().is_string() && b.j().contains(a.j().get<std::string>());
    } else {
      return LineError(line, "'in' a " + TypeName(b) + " is not supported");
    }
    *out = (op == "in") == found;
    return Status::Ok();
  }
  int cmp;
  if (IntLike(a) && IntLike(b)) {
    int64_t x = AsInt(a.j()), y = AsInt(b.j());
    cmp = x < y ? -1 : x > y ? 1 : 0;
  } else if (a.is_json() && b.is_json() && a.j().is_string() && b.j().is_string()) {
    // Byte order of valid UTF-8 is code point order, which is what Python compares.
    cmp = a.j().get_ref<const std::string&>().compare(b.j().get_ref<const std::string&>());
  } else {
    return LineError(line, "'" + op + "' between a " + TypeName(a) + " and a " + TypeName(b) +
                               " is not supported");
  }
  *out = op == "<" ? cmp < 0 : op == ">" ? cmp > 0 : op == "<=" ? cmp <= 0 : cmp >= 0;
  return Status::Ok();
}

Status ApplyTest(int line, const std::string& t, bool negate, const Value& v, bool* out) {
  const json* j = v.is_json() ? &v.j() : nullptr;
  if (t == "defined")
    *out = !v.undefined();
  else if (t == "undefined")
    *out = v.undefined();
  else if (t == "none")
    *out = j && j->is_null();
  else if (t == "string")
    *out = j && j->is_string();
  else if (t == "mapping")
    *out = j && j->is_object();
  else if (t == "boolean")
    *out = j && j->is_boolean();
  else if (t == "integer")
    *out = j && j->is_number_integer();
  else if (t == "true")
    *out = j && j->is_boolean() && j->get<bool>();
  else if (t == "false")
    *out = j && j->is_boolean() && !j->get<bool>();
  else
    return LineError(line, "the '" + t + "' test is not supported");
  if (negate) *out = !*out;
  return Status::Ok();
}

Status ApplyFilter(int line, const std::string& name, const Value& v, Value* out) {
  if (name == "length" || name == "count") {
    if (v.undefined()) {
      *out = Own(0);
    } else if (v.is_json() && v.j().is_string()) {
      *out = Own(CodePoints(v.j().get<std::string>()));
    } else if (v.is_json() && (v.j().is_array() || v.j().is_object())) {
      *out = Own(v.j().size());
    } else {
      return LineError(line, "the length of a " + TypeName(v) + " is not supported");
    }
    return Status::Ok();
  }
  std::string s;
  KUBEMOE_RETURN_IF_ERROR(ToStr(line, v, &s));
  if (name == "trim") {
    s.resize(PyRstripLength(s));
    s.erase(0, s.size() - PyLstripLength(s));
  }
  *out = Own(std::move(s));
  return Status::Ok();
}

}  // namespace kubemoe::router::jinja
