// A small interpreter for the subset of Jinja2 that chat templates in `tokenizer_config.json` use.
// No C++ Jinja library is packaged on Debian, and a chat template that renders differently from
// Python's jinja2 silently changes what the model sees; so every construct outside the subset is
// refused with InvalidArgument naming it (never rendered approximately).
//
// Rendering behaves like the environment Hugging Face transformers (and so vLLM) render chat
// templates in: jinja2's ImmutableSandboxedEnvironment with trim_blocks=True, lstrip_blocks=True,
// the default Undefined, no autoescape, and a `raise_exception(message)` global.
// tests/py/chat_template_test.py checks byte-identical output against Python's jinja2.
//
// Supported:
//   text, {{ expr }}, {# comments #}, whitespace control `{%-` `-%}` `{{-` `-}}` `{#-` `-#}` and
//   `{%+` / `+%}` (no lstrip / no trim); a template's single trailing newline is dropped and
//   "\r\n" / "\r" read as "\n", as jinja2 does by default.
//   {% if %} {% elif %} {% else %} {% endif %}; {% for name in expr %} ... {% endfor %} over a
//   list (or nothing for an undefined value), with loop.index, index0, revindex, revindex0, first,
//   last, length; {% set name = expr %} (scoped like jinja2: a set inside a for body stays there).
//   Literals: 'strings' and "strings" (Python escapes except \N{...}), integers, true/false/none
//   (any capitalisation jinja2 accepts: true, True, ...), [list, literals].
//   Operators: or and not, == != < > <= >=, in, not in, + - * % (integers; + also joins strings
//   and lists, * repeats them), ~ (string join), unary - +, `a if c else b`, x.name, x[index],
//   x[start:stop]. Scoping follows jinja2's compiler, quirks included (router/jinja_scopes.cc).
//   Tests: is [not] defined / undefined / none / string / mapping / boolean / integer / true /
//   false. Filters: trim, length, count, string. Calls: raise_exception(message) only; it fails the
//   render with InvalidArgument(message).
// Values are JSON (null, bool, integer, string, array, object) plus jinja2's Undefined; floating
// point numbers are refused wherever they would be used or printed, because Python's float
// formatting is not reproduced. Printing a list or mapping is refused for the same reason.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"

namespace kubemoe::router {

namespace jinja {
struct Program;  // the parsed template (router/jinja_ast.h)
}

class JinjaTemplate {
 public:
  // Parses `source`. InvalidArgument naming the line and the construct when it is malformed or
  // uses anything outside the subset above (unknown filters, tests and functions included).
  static StatusOr<JinjaTemplate> Compile(std::string_view source);

  // Renders with the top-level variables in `context` (a JSON object). InvalidArgument when the
  // template calls raise_exception, uses an unsupported value (a float, printing a list), applies
  // an operator to values jinja2 would refuse (e.g. a string + an undefined variable), the output
  // or a value it builds would exceed `max_output_bytes`, or it runs more than 2,000,000
  // statements and loop iterations. Thread-safe: a compiled template is immutable.
  StatusOr<std::string> Render(const nlohmann::json& context,
                               size_t max_output_bytes = 64u << 20) const;

 private:
  explicit JinjaTemplate(std::shared_ptr<const jinja::Program> program);
  std::shared_ptr<const jinja::Program> program_;
};

}  // namespace kubemoe::router
