// Expressions of the Jinja subset, with jinja2's precedence and its rules for what ends an
// expression (see router/jinja_parser.h).
#include "router/jinja_parser.h"

namespace kubemoe::router::jinja {
namespace {

const std::set<std::string, std::less<>> kFilters = {"trim", "length", "count", "string"};
const std::set<std::string, std::less<>> kTests = {
    "defined", "undefined", "none", "string", "mapping", "boolean", "integer", "true", "false"};

}  // namespace

// jinja2's parse_tuple, minus tuples: a comma after the expression is refused.
Status Parser::ParseTupleFree(bool with_condexpr, ExprPtr* out) {
  KUBEMOE_RETURN_IF_ERROR(with_condexpr ? ParseCondExpr(out) : ParseOr(out));
  if (IsOp(",")) return Error("tuples are not supported");
  return Status::Ok();
}

Status Parser::ParseCondExpr(ExprPtr* out) {
  KUBEMOE_RETURN_IF_ERROR(ParseOr(out));
  while (IsName("if")) {
    auto e = Make(ExprKind::kCondition);
    Next();
    ExprPtr cond, other;
    KUBEMOE_RETURN_IF_ERROR(ParseOr(&cond));
    if (IsName("else")) {
      Next();
      KUBEMOE_RETURN_IF_ERROR(ParseCondExpr(&other));
    }
    e->children.push_back(std::move(cond));
    e->children.push_back(std::move(*out));
    e->children.push_back(std::move(other));
    *out = std::move(e);
  }
  return Status::Ok();
}

template <typename Sub, typename Match>
Status Parser::ParseLeftAssoc(ExprPtr* out, Sub sub, Match match) {
  KUBEMOE_RETURN_IF_ERROR((this->*sub)(out));
  while (true) {
    std::string op = match();
    if (op.empty()) return Status::Ok();
    auto e = Make(ExprKind::kBinary, op);
    Next();
    ExprPtr rhs;
    KUBEMOE_RETURN_IF_ERROR((this->*sub)(&rhs));
    e->children.push_back(std::move(*out));
    e->children.push_back(std::move(rhs));
    *out = std::move(e);
  }
}

Status Parser::ParseOr(ExprPtr* out) {
  return ParseLeftAssoc(out, &Parser::ParseAnd,
                        [&] { return IsName("or") ? std::string("or") : std::string(); });
}

Status Parser::ParseAnd(ExprPtr* out) {
  return ParseLeftAssoc(out, &Parser::ParseNot,
                        [&] { return IsName("and") ? std::string("and") : std::string(); });
}

Status Parser::ParseNot(ExprPtr* out) {
  if (!IsName("not")) return ParseCompare(out);
  if (++depth_ > kMaxDepth) return Error("expression nested too deeply");
  auto e = Make(ExprKind::kUnary, "not");
  Next();
  ExprPtr operand;
  KUBEMOE_RETURN_IF_ERROR(ParseNot(&operand));
  e->children.push_back(std::move(operand));
  *out = std::move(e);
  --depth_;
  return Status::Ok();
}

Status Parser::ParseCompare(ExprPtr* out) {
  ExprPtr first;
  KUBEMOE_RETURN_IF_ERROR(ParseMath1(&first));
  auto e = Make(ExprKind::kCompare);
  e->children.push_back(std::move(first));
  while (true) {
    std::string op;
    if (Cur().kind == TokenKind::kOperator &&
        (Cur().value == "==" || Cur().value == "!=" || Cur().value == "<" || Cur().value == ">" ||
         Cur().value == "<=" || Cur().value == ">=")) {
      op = Cur().value;
      Next();
    } else if (IsName("in")) {
      op = "in";
      Next();
    } else if (IsName("not") && Peek().kind == TokenKind::kName && Peek().value == "in") {
      op = "not in";
      Next();
      Next();
    } else {
      break;
    }
    ExprPtr rhs;
    KUBEMOE_RETURN_IF_ERROR(ParseMath1(&rhs));
    e->ops.push_back(op);
    e->children.push_back(std::move(rhs));
  }
  *out = e->ops.empty() ? std::move(e->children[0]) : std::move(e);
  return Status::Ok();
}

Status Parser::ParseMath1(ExprPtr* out) {
  return ParseLeftAssoc(out, &Parser::ParseConcat,
                        [&] { return IsOp("+") || IsOp("-") ? Cur().value : std::string(); });
}

Status Parser::ParseConcat(ExprPtr* out) {
  return ParseLeftAssoc(out, &Parser::ParseMath2,
                        [&] { return IsOp("~") ? std::string("~") : std::string(); });
}

Status Parser::ParseMath2(ExprPtr* out) {
  KUBEMOE_RETURN_IF_ERROR(ParseLeftAssoc(out, &Parser::ParsePow, [&] {
    return IsOp("*") || IsOp("%") ? Cur().value : std::string();
  }));
  if (IsOp("/") || IsOp("//")) return Error("division ('" + Cur().value + "') is not supported");
  return Status::Ok();
}

Status Parser::ParsePow(ExprPtr* out) {
  KUBEMOE_RETURN_IF_ERROR(ParseUnary(true, out));
  if (IsOp("**")) return Error("the power operator ('**') is not supported");
  return Status::Ok();
}

Status Parser::ParseUnary(bool with_filter, ExprPtr* out) {
  if (++depth_ > kMaxDepth) return Error("expression nested too deeply");
  if (IsOp("-") || IsOp("+")) {
    auto e = Make(ExprKind::kUnary, Cur().value);
    Next();
    ExprPtr operand;
    KUBEMOE_RETURN_IF_ERROR(ParseUnary(false, &operand));
    e->children.push_back(std::move(operand));
    *out = std::move(e);
  } else {
    KUBEMOE_RETURN_IF_ERROR(ParsePrimary(out));
  }
  KUBEMOE_RETURN_IF_ERROR(ParsePostfix(out));
  if (with_filter) KUBEMOE_RETURN_IF_ERROR(ParseFilterExpr(out));
  --depth_;
  return Status::Ok();
}

Status Parser::ParsePrimary(ExprPtr* out) {
  const Token& t = Cur();
  if (t.kind == TokenKind::kName) {
    auto e = Make(ExprKind::kLiteral);
    if (t.value == "true" || t.value == "True") {
      e->literal = true;
    } else if (t.value == "false" || t.value == "False") {
      e->literal = false;
    } else if (t.value == "none" || t.value == "None") {
      e->literal = nullptr;
    } else {
      e = Make(ExprKind::kName, t.value);
    }
    Next();
    *out = std::move(e);
    return Status::Ok();
  }
  if (t.kind == TokenKind::kString) {
    auto e = Make(ExprKind::kLiteral);
    std::string value;
    while (Cur().kind == TokenKind::kString) {  // adjacent literals join, as in Python
      value += Cur().value;
      Next();
    }
    e->literal = value;
    *out = std::move(e);
    return Status::Ok();
  }
  if (t.kind == TokenKind::kInteger) {
    auto e = Make(ExprKind::kLiteral);
    e->literal = t.integer;
    Next();
    *out = std::move(e);
    return Status::Ok();
  }
  if (IsOp("(")) {
    Next();
    KUBEMOE_RETURN_IF_ERROR(ParseTupleFree(true, out));
    return ExpectOp(")");
  }
  if (IsOp("[")) {
    auto e = Make(ExprKind::kList);
    Next();
    while (!IsOp("]")) {
      if (!e->children.empty()) {
        KUBEMOE_RETURN_IF_ERROR(ExpectOp(","));
        if (IsOp("]")) break;
      }
      ExprPtr item;
      KUBEMOE_RETURN_IF_ERROR(ParseCondExpr(&item));
      e->children.push_back(std::move(item));
    }
    Next();
    *out = std::move(e);
    return Status::Ok();
  }
  if (IsOp("{")) return Error("dict literals are not supported");
  return Error("unexpected " + Describe());
}

Status Parser::ParsePostfix(ExprPtr* out) {
  while (true) {
    if (IsOp(".")) {
      Next();
      if (Cur().kind == TokenKind::kName) {
        auto e = Make(ExprKind::kGetAttr, Cur().value);
        e->children.push_back(std::move(*out));
        *out = std::move(e);
      } else if (Cur().kind == TokenKind::kInteger) {  // x.0 is x[0] in jinja2
        auto e = Make(ExprKind::kGetItem);
        auto index = Make(ExprKind::kLiteral);
        index->literal = Cur().integer;
        e->children.push_back(std::move(*out));
        e->children.push_back(std::move(index));
        *out = std::move(e);
      } else {
        return Error("expected an attribute name after '.', got " + Describe());
      }
      Next();
    } else if (IsOp("[")) {
      KUBEMOE_RETURN_IF_ERROR(ParseSubscript(out));
    } else if (IsOp("(")) {
      KUBEMOE_RETURN_IF_ERROR(ParseCall(out));
    } else {
      return Status::Ok();
    }
  }
}

Status Parser::ParseSubscript(ExprPtr* out) {
  Next();  // '['
  ExprPtr start, stop;
  if (!IsOp(":")) KUBEMOE_RETURN_IF_ERROR(ParseCondExpr(&start));
  if (IsOp(":")) {
    Next();
    if (!IsOp("]") && !IsOp(":")) KUBEMOE_RETURN_IF_ERROR(ParseCondExpr(&stop));
    if (IsOp(":")) return Error("slices with a step are not supported");
    auto e = Make(ExprKind::kSlice);
    e->children.push_back(std::move(*out));
    e->children.push_back(std::move(start));
    e->children.push_back(std::move(stop));
    *out = std::move(e);
  } else {
    if (IsOp(",")) return Error("tuple subscripts are not supported");
    auto e = Make(ExprKind::kGetItem);
    e->children.push_back(std::move(*out));
    e->children.push_back(std::move(start));
    *out = std::move(e);
  }
  return ExpectOp("]");
}

Status Parser::ParseCall(ExprPtr* out) {
  if ((*out)->kind != ExprKind::kName) {
    return Error("calling methods or expressions is not supported (only raise_exception())");
  }
  if ((*out)->name != "raise_exception") {
    return Error("calling " + (*out)->name + "() is not supported (only raise_exception())");
  }
  auto e = Make(ExprKind::kCall, "raise_exception");
  Next();  // '('
  while (!IsOp(")")) {
    if (!e->children.empty()) KUBEMOE_RETURN_IF_ERROR(ExpectOp(","));
    if (Cur().kind == TokenKind::kName && Peek().kind == TokenKind::kOperator &&
        Peek().value == "=") {
      return Error("keyword arguments are not supported");
    }
    if (IsOp("*") || IsOp("**")) return Error("argument unpacking is not supported");
    ExprPtr arg;
    KUBEMOE_RETURN_IF_ERROR(ParseCondExpr(&arg));
    e->children.push_back(std::move(arg));
  }
  Next();
  if (e->children.size() != 1) return Error("raise_exception() takes exactly one argument");
  *out = std::move(e);
  return Status::Ok();
}

Status Parser::ParseFilterExpr(ExprPtr* out) {
  while (true) {
    if (IsOp("|")) {
      Next();
      if (Cur().kind != TokenKind::kName) return Error("expected a filter name, got " + Describe());
      std::string name = Cur().value;
      Next();
      while (IsOp(".")) {  // dotted filter names exist in jinja2; none are supported
        Next();
        name += "." + Cur().value;
        Next();
      }
      if (!kFilters.count(name)) return Error("the '" + name + "' filter is not supported");
      if (IsOp("(")) return Error("arguments to the '" + name + "' filter are not supported");
      auto e = Make(ExprKind::kFilter, name);
      e->children.push_back(std::move(*out));
      *out = std::move(e);
    } else if (IsName("is")) {
      Next();
      bool negate = IsName("not");
      if (negate) Next();
      if (Cur().kind != TokenKind::kName) return Error("expected a test name, got " + Describe());
      std::string name = Cur().value;
      Next();
      if (!kTests.count(name)) return Error("the '" + name + "' test is not supported");
      bool argument =
          IsOp("(") || IsOp("[") || IsOp("{") || Cur().kind == TokenKind::kString ||
          Cur().kind == TokenKind::kInteger ||
          (Cur().kind == TokenKind::kName && !IsName("else") && !IsName("or") && !IsName("and"));
      if (argument) return Error("arguments to the '" + name + "' test are not supported");
      auto e = Make(ExprKind::kTest, name);
      e->negate = negate;
      e->children.push_back(std::move(*out));
      *out = std::move(e);
    } else if (IsOp("(")) {
      return Error("calling the result of an expression is not supported");
    } else {
      return Status::Ok();
    }
  }
}

}  // namespace kubemoe::router::jinja
