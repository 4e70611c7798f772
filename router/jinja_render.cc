// Runs a parsed template: statements, scopes and expressions (the values and their operations
// are in router/jinja_value.cc).
#include <algorithm>
#include <map>

#include "router/jinja_ast.h"
#include "router/jinja_template.h"
#include "router/jinja_value.h"

namespace kubemoe::router {
namespace jinja {
namespace {

using nlohmann::json;

// Statements and loop iterations one render may execute, so that nested loops cannot run for
// ever (a chat template does a few per message).
constexpr uint64_t kMaxSteps = 2'000'000;

class Renderer {
 public:
  Renderer(const Program& program, const json& context, size_t max_output)
      : program_(program), context_(context), max_output_(max_output) {}

  StatusOr<std::string> Run() {
    if (!context_.is_object()) return InvalidArgument("chat template context must be an object");
    scopes_.emplace_back();
    for (const auto& name : program_.undefined_at_entry) scopes_.back()[name] = Undefined(name);
    KUBEMOE_RETURN_IF_ERROR(Exec(program_.body));
    return std::move(out_);
  }

 private:
  Status Append(int line, const std::string& text) {
    if (out_.size() + text.size() > max_output_) {
      return LineError(line, "rendered prompt exceeds " + std::to_string(max_output_) + " bytes");
    }
    out_ += text;
    return Status::Ok();
  }

  Status Step(int line) {
    if (++steps_ > kMaxSteps) {
      return LineError(line, "rendering needs more than " + std::to_string(kMaxSteps) + " steps");
    }
    return Status::Ok();
  }

  Status Exec(const std::vector<std::unique_ptr<Stmt>>& body) {
    for (const auto& s : body) {
      KUBEMOE_RETURN_IF_ERROR(Step(s->line));
      switch (s->kind) {
        case StmtKind::kText:
          KUBEMOE_RETURN_IF_ERROR(Append(s->line, s->text));
          break;
        case StmtKind::kOutput: {
          Value v;
          std::string text;
          KUBEMOE_RETURN_IF_ERROR(Eval(*s->expr, &v));
          KUBEMOE_RETURN_IF_ERROR(ToStr(s->line, v, &text));
          KUBEMOE_RETURN_IF_ERROR(Append(s->line, text));
          break;
        }
        case StmtKind::kSet: {
          Value v;
          KUBEMOE_RETURN_IF_ERROR(Eval(*s->expr, &v));
          scopes_.back()[s->target] = std::move(v);
          break;
        }
        case StmtKind::kIf: {
          size_t branch = 0;
          for (; branch < s->conditions.size(); ++branch) {
            Value c;
            KUBEMOE_RETURN_IF_ERROR(Eval(*s->conditions[branch], &c));
            if (Truthy(c)) break;
          }
          if (branch < s->bodies.size()) KUBEMOE_RETURN_IF_ERROR(Exec(s->bodies[branch]));
          break;
        }
        case StmtKind::kFor:
          KUBEMOE_RETURN_IF_ERROR(ExecFor(*s));
          break;
      }
    }
    return Status::Ok();
  }

  Status ExecFor(const Stmt& s) {
    Value seq;
    KUBEMOE_RETURN_IF_ERROR(Eval(*s.expr, &seq));
    if (seq.undefined()) return Status::Ok();  // jinja2's Undefined iterates as empty
    if (!seq.is_json() || !seq.j().is_array()) {
      return LineError(s.line, "iterating over a " + TypeName(seq) + " is not supported");
    }
    const json& items = seq.j();
    for (size_t i = 0; i < items.size(); ++i) {
      KUBEMOE_RETURN_IF_ERROR(Step(s.line));
      Value loop;
      loop.kind = Value::Kind::kLoop;
      loop.index0 = static_cast<int64_t>(i);
      loop.length = static_cast<int64_t>(items.size());
      scopes_.emplace_back();
      for (const auto& name : s.undefined_at_entry) scopes_.back()[name] = Undefined(name);
      scopes_.back()[s.target] = Ref(&items[i], seq.owner);
      scopes_.back()["loop"] = loop;
      Status status = Exec(s.bodies[0]);
      scopes_.pop_back();
      KUBEMOE_RETURN_IF_ERROR(status);
    }
    return Status::Ok();
  }

  Value Lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto found = it->find(name);
      if (found != it->end()) return found->second;
    }
    auto found = context_.find(name);
    if (found != context_.end()) return Ref(&*found, nullptr);
    return Undefined(name);
  }

  Status Slice(const Expr& e, Value* out) {
    Value base, bounds[2];
    KUBEMOE_RETURN_IF_ERROR(Eval(*e.children[0], &base));
    if (!base.is_json() || !base.j().is_array()) {
      return LineError(e.line, "slicing a " + TypeName(base) + " is not supported");
    }
    int64_t n = static_cast<int64_t>(base.j().size());
    int64_t at[2] = {0, n};
    for (int k = 0; k < 2; ++k) {
      if (!e.children[k + 1]) continue;
      KUBEMOE_RETURN_IF_ERROR(Eval(*e.children[k + 1], &bounds[k]));
      if (bounds[k].is_json() && bounds[k].j().is_null()) continue;
      if (!IntLike(bounds[k])) {
        return LineError(e.line, "slice bounds must be integers, not a " + TypeName(bounds[k]));
      }
      int64_t i = AsInt(bounds[k].j());
      if (i < 0) i += n;
      at[k] = std::clamp<int64_t>(i, 0, n);
    }
    json result = json::array();
    for (int64_t i = at[0]; i < at[1]; ++i) result.push_back(base.j()[static_cast<size_t>(i)]);
    *out = Own(std::move(result));
    return Status::Ok();
  }

  Status Eval(const Expr& e, Value* out) {
    switch (e.kind) {
      case ExprKind::kLiteral:
        *out = Ref(&e.literal, nullptr);
        return Status::Ok();
      case ExprKind::kName:
        *out = Lookup(e.name);
        return Status::Ok();
      case ExprKind::kList: {
        json items = json::array();
        size_t size = 1;
        for (const auto& child : e.children) {
          Value v;
          KUBEMOE_RETURN_IF_ERROR(Eval(*child, &v));
          if (!v.is_json())
            return LineError(e.line, "a list of a " + TypeName(v) + " is not supported");
          size += ApproxSize(v.j(), max_output_);
          if (size > max_output_) {
            return LineError(e.line, "a list built by the template exceeds " +
                                         std::to_string(max_output_) + " bytes");
          }
          items.push_back(v.j());
        }
        *out = Own(std::move(items));
        return Status::Ok();
      }
      case ExprKind::kGetAttr: {
        Value base;
        KUBEMOE_RETURN_IF_ERROR(Eval(*e.children[0], &base));
        return GetAttr(e.line, base, e.name, out);
      }
      case ExprKind::kGetItem: {
        Value base, key;
        KUBEMOE_RETURN_IF_ERROR(Eval(*e.children[0], &base));
        KUBEMOE_RETURN_IF_ERROR(Eval(*e.children[1], &key));
        return GetItem(e.line, base, key, out);
      }
      case ExprKind::kSlice:
        return Slice(e, out);
      case ExprKind::kUnary: {
        Value v;
        KUBEMOE_RETURN_IF_ERROR(Eval(*e.children[0], &v));
        if (e.name == "not") {
          *out = Own(!Truthy(v));
          return Status::Ok();
        }
        if (!IntLike(v)) return LineError(e.line, "unary '" + e.name + "' on a " + TypeName(v));
        int64_t x = AsInt(v.j());
        if (e.name == "-" && x == INT64_MIN) return LineError(e.line, "integer overflow in '-'");
        *out = Own(e.name == "-" ? -x : x);
        return Status::Ok();
      }
      case ExprKind::kBinary: {
        Value a, b;
        KUBEMOE_RETURN_IF_ERROR(Eval(*e.children[0], &a));
        if (e.name == "or" || e.name == "and") {  // Python returns an operand, not a bool
          if (Truthy(a) == (e.name == "or")) {
            *out = std::move(a);
            return Status::Ok();
          }
          return Eval(*e.children[1], out);
        }
        KUBEMOE_RETURN_IF_ERROR(Eval(*e.children[1], &b));
        return Arithmetic(e.line, e.name, a, b, max_output_, out);
      }
      case ExprKind::kCompare: {
        Value left;
        KUBEMOE_RETURN_IF_ERROR(Eval(*e.children[0], &left));
        bool result = true;
        for (size_t i = 0; i < e.ops.size() && result; ++i) {  // a < b < c: Python chaining
          Value right;
          KUBEMOE_RETURN_IF_ERROR(Eval(*e.children[i + 1], &right));
          KUBEMOE_RETURN_IF_ERROR(Compare(e.line, e.ops[i], left, right, &result));
          left = std::move(right);
        }
        *out = Own(result);
        return Status::Ok();
      }
      case ExprKind::kCondition: {
        Value c;
        KUBEMOE_RETURN_IF_ERROR(Eval(*e.children[0], &c));
        if (Truthy(c)) return Eval(*e.children[1], out);
        if (e.children[2]) return Eval(*e.children[2], out);
        *out = Undefined("[if without else]");
        return Status::Ok();
      }
      case ExprKind::kTest: {
        Value v;
        bool result = false;
        KUBEMOE_RETURN_IF_ERROR(Eval(*e.children[0], &v));
        KUBEMOE_RETURN_IF_ERROR(ApplyTest(e.line, e.name, e.negate, v, &result));
        *out = Own(result);
        return Status::Ok();
      }
      case ExprKind::kFilter: {
        Value v;
        KUBEMOE_RETURN_IF_ERROR(Eval(*e.children[0], &v));
        return ApplyFilter(e.line, e.name, v, out);
      }
      case ExprKind::kCall: {
        Value message;
        std::string text;
        KUBEMOE_RETURN_IF_ERROR(Eval(*e.children[0], &message));
        KUBEMOE_RETURN_IF_ERROR(ToStr(e.line, message, &text));
        return InvalidArgument(text);  // the template's own message, as transformers reports it
      }
    }
    return LineError(e.line, "unknown expression");
  }

  const Program& program_;
  const json& context_;
  size_t max_output_;
  uint64_t steps_ = 0;
  std::vector<std::map<std::string, Value>> scopes_;
  std::string out_;
};

}  // namespace
}  // namespace jinja

JinjaTemplate::JinjaTemplate(std::shared_ptr<const jinja::Program> program)
    : program_(std::move(program)) {}

StatusOr<JinjaTemplate> JinjaTemplate::Compile(std::string_view source) {
  auto tokens = jinja::Lex(source);
  if (!tokens.ok()) return tokens.status();
  auto program = jinja::Parse(*tokens);
  if (!program.ok()) return program.status();
  jinja::AnalyzeScopes(program->get());
  return JinjaTemplate(std::shared_ptr<const jinja::Program>(std::move(program).value()));
}

StatusOr<std::string> JinjaTemplate::Render(const nlohmann::json& context,
                                            size_t max_output_bytes) const {
  return jinja::Renderer(*program_, context, max_output_bytes).Run();
}

}  // namespace kubemoe::router
