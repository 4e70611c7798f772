// Internal to the Jinja subset (router/jinja_*.cc): lexer tokens and the parsed program.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace kubemoe::router::jinja {

// ---- Lexer ----------------------------------------------------------------------------------

enum class TokenKind {
  kText,        // template data between tags, whitespace control already applied
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,    // value already unescaped
  kInteger,   // value in `integer`
  kOperator,  // value is the operator's spelling
  kEnd,       // end of the template
};

struct Token {
  TokenKind kind;
  std::string value;
  int64_t integer = 0;
  int line = 1;
};

// Splits a template into tokens the way jinja2's lexer does with trim_blocks and lstrip_blocks.
// Comments are dropped. InvalidArgument naming the line on an unclosed tag or string, an unknown
// escape we do not reproduce, or a character jinja2 would not accept in an expression.
StatusOr<std::vector<Token>> Lex(std::string_view source);

// Python's str.isspace() for one UTF-8 character at `pos`: its byte length, or 0 when the
// character is not whitespace. jinja2 strips with Python's str.rstrip() and regex \s, which both
// use this set (ASCII blanks, \x1c-\x1f, U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029,
// U+202F, U+205F, U+3000).
size_t PyWhitespaceAt(std::string_view text, size_t pos);
// Length of `text` without its trailing / leading Python whitespace.
size_t PyRstripLength(std::string_view text);
size_t PyLstripLength(std::string_view text);

// ---- Program --------------------------------------------------------------------------------

enum class ExprKind {
  kLiteral,    // `literal` (JSON null, bool, integer or string)
  kList,       // [children...]
  kName,       // name
  kGetAttr,    // children[0].name
  kGetItem,    // children[0][children[1]]
  kSlice,      // children[0][children[1]:children[2]] (a null child = omitted bound)
  kUnary,      // op in {"not", "-", "+"}, children[0]
  kBinary,     // op in {"or", "and", "+", "-", "*", "%", "~"}, children[0..1]
  kCompare,    // chained: children[0] ops[0] children[1] ops[1] children[2] ...
  kCondition,  // children[1] if children[0] else children[2] (children[2] may be null)
  kTest,       // children[0] is [not] name (negated in `negate`)
  kFilter,     // children[0] | name
  kCall,       // name(children...) — only raise_exception
};

struct Expr {
  ExprKind kind;
  int line = 1;
  std::string name;              // variable, attribute, operator, test, filter or function name
  std::vector<std::string> ops;  // kCompare only
  bool negate = false;           // kTest only
  nlohmann::json literal;        // kLiteral
  std::vector<std::unique_ptr<Expr>> children;
};

enum class StmtKind { kText, kOutput, kIf, kFor, kSet };

struct Stmt {
  StmtKind kind;
  int line = 1;
  std::string text;                                        // kText
  std::string target;                                      // kFor, kSet: the variable name
  std::unique_ptr<Expr> expr;                              // kOutput, kFor (iterable), kSet
  std::vector<std::unique_ptr<Expr>> conditions;           // kIf: one per if / elif branch
  std::vector<std::vector<std::unique_ptr<Stmt>>> bodies;  // kIf: per branch (+ else), kFor: 1
  std::vector<std::string> undefined_at_entry;             // kFor: see Program::undefined_at_entry
};

struct Program {
  std::vector<std::unique_ptr<Stmt>> body;
  // Names that start undefined in the template's frame (and, in Stmt, in each iteration of a
  // loop body) even when an enclosing scope or the context has them: jinja2 compiles a name that
  // a frame assigns before it reads it into a frame-local variable, so a loop body that runs
  // before the assignment sees it undefined. See AnalyzeScopes.
  std::vector<std::string> undefined_at_entry;
};

// Builds the program from Lex's tokens. InvalidArgument naming the line and the construct.
StatusOr<std::unique_ptr<Program>> Parse(const std::vector<Token>& tokens);

// Fills the undefined_at_entry lists the way jinja2's idtracking.py decides a frame's variables:
// per frame (the template, each loop body), a name whose first reference outside any if-branch
// is a {% set %}, and that no enclosing frame references, starts undefined.
void AnalyzeScopes(Program* program);

}  // namespace kubemoe::router::jinja
