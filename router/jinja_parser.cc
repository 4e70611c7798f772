// Statements of the Jinja subset: text, {{ output }}, if/elif/else, for and set.
#include "router/jinja_parser.h"

namespace kubemoe::router::jinja {

// Statements until a block tag named in `ends` (its name is consumed and returned in `end`).
Status Parser::ParseBody(const std::set<std::string>& ends, Body* body, std::string* end) {
  if (++depth_ > kMaxDepth) return Error("blocks nested too deeply");
  while (true) {
    const Token& t = Cur();
    if (t.kind == TokenKind::kEnd) {
      if (!ends.empty())
        return Error("unexpected end of template, expected {% " + *ends.rbegin() + " %}");
      break;
    }
    if (t.kind == TokenKind::kText) {
      auto s = std::make_unique<Stmt>();
      s->kind = StmtKind::kText;
      s->line = t.line;
      s->text = t.value;
      body->push_back(std::move(s));
      Next();
      continue;
    }
    if (t.kind == TokenKind::kVarBegin) {
      Next();
      auto s = std::make_unique<Stmt>();
      s->kind = StmtKind::kOutput;
      s->line = t.line;
      KUBEMOE_RETURN_IF_ERROR(ParseTupleFree(true, &s->expr));
      KUBEMOE_RETURN_IF_ERROR(Expect(TokenKind::kVarEnd, "'}}'"));
      body->push_back(std::move(s));
      continue;
    }
    if (t.kind != TokenKind::kBlockBegin) return Error("unexpected " + Describe());
    Next();
    if (Cur().kind != TokenKind::kName) return Error("expected a tag name, got " + Describe());
    std::string name = Cur().value;
    if (ends.count(name)) {
      Next();
      *end = name;
      --depth_;
      return Status::Ok();
    }
    Next();
    if (name == "if") {
      KUBEMOE_RETURN_IF_ERROR(ParseIf(body));
    } else if (name == "for") {
      KUBEMOE_RETURN_IF_ERROR(ParseFor(body));
    } else if (name == "set") {
      KUBEMOE_RETURN_IF_ERROR(ParseSet(body));
    } else if (name == "elif" || name == "else" || name == "endif" || name == "endfor") {
      return Error("unexpected {% " + name + " %}");
    } else {
      return Error("the {% " + name + " %} tag is not supported");
    }
  }
  --depth_;
  return Status::Ok();
}

Status Parser::ParseIf(Body* body) {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::kIf;
  s->line = Cur().line;
  std::string end = "elif";
  while (end == "elif") {
    ExprPtr cond;
    KUBEMOE_RETURN_IF_ERROR(ParseTupleFree(true, &cond));
    KUBEMOE_RETURN_IF_ERROR(Expect(TokenKind::kBlockEnd, "'%}'"));
    s->conditions.push_back(std::move(cond));
    s->bodies.emplace_back();
    KUBEMOE_RETURN_IF_ERROR(ParseBody({"elif", "else", "endif"}, &s->bodies.back(), &end));
  }
  if (end == "else") {
    KUBEMOE_RETURN_IF_ERROR(Expect(TokenKind::kBlockEnd, "'%}'"));
    s->bodies.emplace_back();
    KUBEMOE_RETURN_IF_ERROR(ParseBody({"endif"}, &s->bodies.back(), &end));
  }
  KUBEMOE_RETURN_IF_ERROR(Expect(TokenKind::kBlockEnd, "'%}'"));
  body->push_back(std::move(s));
  return Status::Ok();
}

Status Parser::ParseFor(Body* body) {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::kFor;
  s->line = Cur().line;
  if (Cur().kind != TokenKind::kName) return Error("expected a loop variable, got " + Describe());
  s->target = Cur().value;
  Next();
  if (IsOp(",")) return Error("unpacking several loop variables is not supported");
  if (!IsName("in")) return Error("expected 'in', got " + Describe());
  Next();
  KUBEMOE_RETURN_IF_ERROR(ParseTupleFree(false, &s->expr));
  if (IsName("if")) return Error("loop filters ({% for ... if ... %}) are not supported");
  if (IsName("recursive")) return Error("recursive loops are not supported");
  KUBEMOE_RETURN_IF_ERROR(Expect(TokenKind::kBlockEnd, "'%}'"));
  s->bodies.emplace_back();
  std::string end;
  KUBEMOE_RETURN_IF_ERROR(ParseBody({"endfor", "else"}, &s->bodies.back(), &end));
  if (end == "else") return Error("{% for %} ... {% else %} is not supported");
  KUBEMOE_RETURN_IF_ERROR(Expect(TokenKind::kBlockEnd, "'%}'"));
  body->push_back(std::move(s));
  return Status::Ok();
}

Status Parser::ParseSet(Body* body) {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::kSet;
  s->line = Cur().line;
  if (Cur().kind != TokenKind::kName) return Error("expected a variable name, got " + Describe());
  s->target = Cur().value;
  Next();
  if (IsOp(".")) return Error("assigning to an attribute (namespace objects) is not supported");
  if (IsOp(",")) return Error("assigning several variables at once is not supported");
  if (!IsOp("=")) return Error("block assignments ({% set x %}...{% endset %}) are not supported");
  Next();
  KUBEMOE_RETURN_IF_ERROR(ParseTupleFree(true, &s->expr));
  KUBEMOE_RETURN_IF_ERROR(Expect(TokenKind::kBlockEnd, "'%}'"));
  body->push_back(std::move(s));
  return Status::Ok();
}

StatusOr<std::unique_ptr<Program>> Parse(const std::vector<Token>& tokens) {
  return Parser(tokens).Run();
}

}  // namespace kubemoe::router::jinja
