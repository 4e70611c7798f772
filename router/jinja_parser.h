// Internal to the Jinja subset: the parser, following jinja2's parser (jinja2/parser.py) for
// precedence and for what ends an expression, and refusing everything outside the subset listed
// in router/jinja_template.h. Statements are parsed in jinja_parser.cc, expressions in
// jinja_expr_parser.cc.
#pragma once

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "router/jinja_ast.h"

namespace kubemoe::router::jinja {

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : tokens_(tokens) {}

  StatusOr<std::unique_ptr<Program>> Run() {
    auto program = std::make_unique<Program>();
    std::string end;
    KUBEMOE_RETURN_IF_ERROR(ParseBody({}, &program->body, &end));
    return program;
  }

 private:
  // Recursion bound, so a hostile template cannot overflow the stack.
  static constexpr int kMaxDepth = 200;

  using ExprPtr = std::unique_ptr<Expr>;
  using Body = std::vector<std::unique_ptr<Stmt>>;

  const Token& Cur() const { return tokens_[pos_]; }
  const Token& Peek() const { return tokens_[std::min(pos_ + 1, tokens_.size() - 1)]; }
  void Next() {
    if (pos_ + 1 < tokens_.size()) ++pos_;
  }
  bool IsOp(std::string_view op) const {
    return Cur().kind == TokenKind::kOperator && Cur().value == op;
  }
  bool IsName(std::string_view name) const {
    return Cur().kind == TokenKind::kName && Cur().value == name;
  }

  Status Error(const std::string& what) const {
    return InvalidArgument("chat template line " + std::to_string(Cur().line) + ": " + what);
  }
  std::string Describe() const {
    switch (Cur().kind) {
      case TokenKind::kEnd:
        return "end of template";
      case TokenKind::kBlockEnd:
        return "'%}'";
      case TokenKind::kVarEnd:
        return "'}}'";
      case TokenKind::kString:
        return "a string";
      default:
        return "'" + Cur().value + "'";
    }
  }
  Status Expect(TokenKind kind, std::string_view what) {
    if (Cur().kind != kind) return Error("expected " + std::string(what) + ", got " + Describe());
    Next();
    return Status::Ok();
  }
  Status ExpectOp(std::string_view op) {
    if (!IsOp(op)) return Error("expected '" + std::string(op) + "', got " + Describe());
    Next();
    return Status::Ok();
  }

  ExprPtr Make(ExprKind kind, std::string name = "") {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = Cur().line;
    e->name = std::move(name);
    return e;
  }

  // Statements until a block tag named in `ends` (its name is consumed and returned in `end`).
  Status ParseBody(const std::set<std::string>& ends, Body* body, std::string* end);

  Status ParseIf(Body* body);
  Status ParseFor(Body* body);
  Status ParseSet(Body* body);

  // Expressions, router/jinja_expr_parser.cc, with jinja2's precedence from loosest to tightest.
  // jinja2's parse_tuple, minus tuples: a comma after the expression is refused.
  Status ParseTupleFree(bool with_condexpr, ExprPtr* out);

  Status ParseCondExpr(ExprPtr* out);  // a if b else c
  template <typename Sub, typename Match>
  Status ParseLeftAssoc(ExprPtr* out, Sub sub, Match match);

  Status ParseOr(ExprPtr* out);
  Status ParseAnd(ExprPtr* out);
  Status ParseNot(ExprPtr* out);
  Status ParseCompare(ExprPtr* out);  // == != < > <= >= in, not in (chained)
  Status ParseMath1(ExprPtr* out);    // + -
  Status ParseConcat(ExprPtr* out);   // ~
  Status ParseMath2(ExprPtr* out);    // * %
  Status ParsePow(ExprPtr* out);
  Status ParseUnary(bool with_filter, ExprPtr* out);  // - +, then postfix and filters
  Status ParsePrimary(ExprPtr* out);
  Status ParsePostfix(ExprPtr* out);  // .name [index] [a:b] (call)
  Status ParseSubscript(ExprPtr* out);
  Status ParseCall(ExprPtr* out);
  Status ParseFilterExpr(ExprPtr* out);  // | filter, is test

  const std::vector<Token>& tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace kubemoe::router::jinja
