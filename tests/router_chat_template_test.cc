// Chat templates (router/chat_template.h) and the Jinja subset behind them
// (router/jinja_template.h). Byte-for-byte agreement with Python's jinja2 over many templates is
// checked by tests/py/chat_template_test.py; these tests pin the contract's edges.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/tokenizer.h"
#include "router/chat_template.h"
#include "router/jinja_template.h"
#include "tests/temp_dir.h"

namespace kubemoe::router {
namespace {

using nlohmann::json;

const json kConversation = json::array({{{"role", "system"}, {"content", "S"}},
                                        {{"role", "user"}, {"content", "U1"}},
                                        {{"role", "assistant"}, {"content", "A1"}},
                                        {{"role", "user"}, {"content", "U2"}}});

std::string Render(std::string_view source, const json& context, size_t max_output = 64u << 20) {
  auto t = JinjaTemplate::Compile(source);
  if (!t.ok()) return "COMPILE ERROR: " + t.status().message();
  auto out = t->Render(context, max_output);
  return out.ok() ? *out : "RENDER ERROR: " + out.status().message();
}

TEST(ChatTemplate, DefaultIsDeepSeekV2Chat) {
  auto chat = ChatTemplate::FromSource(kDefaultChatTemplate, "<bos>", "<eos>");
  ASSERT_TRUE(chat.ok()) << chat.status().ToString();
  EXPECT_TRUE(chat->is_default());
  auto out = chat->Render(kConversation, true);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "<bos>S\n\nUser: U1\n\nAssistant: A1<eos>User: U2\n\nAssistant:");
  out = chat->Render(kConversation, false);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "<bos>S\n\nUser: U1\n\nAssistant: A1<eos>User: U2\n\n");
  out = chat->Render(json::array({{{"role", "tool"}, {"content", "T"}}}), true);
  EXPECT_EQ(*out, "<bos>Assistant:");  // roles the template does not know are left out
}

TEST(ChatTemplate, TokenizerConfig) {
  json config = {{"bos_token", {{"__type", "AddedToken"}, {"content", "<B>"}}},
                 {"eos_token", "<E>"},
                 {"unk_token", nullptr},
                 {"pad_token", "<P>"},
                 {"chat_template",
                  "{{ bos_token }}{{ pad_token }}{{ unk_token }}"
                  "{% for m in messages %}[{{ m.role }}]{% endfor %}{{ eos_token }}"
                  "{{ tools is none }}"}};
  auto chat = ChatTemplate::FromTokenizerConfig(config.dump(), "cfg", nullptr);
  ASSERT_TRUE(chat.ok()) << chat.status().ToString();
  EXPECT_FALSE(chat->is_default());
  EXPECT_EQ(chat->bos_token(), "<B>");
  EXPECT_EQ(*chat->Render(kConversation, true), "<B><P>[system][user][assistant][user]<E>True");

  // Named templates: "default" is the chat one.
  config["chat_template"] =
      json::array({{{"name", "rag"}, {"template", "R"}}, {{"name", "default"}, {"template", "D"}}});
  EXPECT_EQ(*ChatTemplate::FromTokenizerConfig(config.dump(), "cfg", nullptr)
                 ->Render(kConversation, true),
            "D");

  // Errors name the file and the field or construct.
  auto bad = ChatTemplate::FromTokenizerConfig("{", "x/tokenizer_config.json", nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("x/tokenizer_config.json"), std::string::npos);
  bad = ChatTemplate::FromTokenizerConfig(json{{"bos_token", 5}}.dump(), "cfg", nullptr);
  EXPECT_NE(bad.status().message().find("bos_token"), std::string::npos);
  bad = ChatTemplate::FromTokenizerConfig(
      json{{"chat_template", "{% set ns = namespace(a=1) %}"}}.dump(), "cfg", nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("namespace"), std::string::npos) << bad.status().message();
  bad = ChatTemplate::FromTokenizerConfig(json{{"chat_template", 3}}.dump(), "cfg", nullptr);
  EXPECT_FALSE(bad.ok());
}

TEST(ChatTemplate, ModelDirectory) {
  auto tokenizer = Tokenizer::FromFile(KUBEMOE_SOURCE_DIR "/tests/data/tokenizer/tokenizer.json");
  ASSERT_TRUE(tokenizer.ok());
  TempDir dir;
  // No tokenizer_config.json: the default, with the tokenizer's BOS and EOS.
  auto chat = ChatTemplate::FromModelDir(dir.path(), *tokenizer);
  ASSERT_TRUE(chat.ok()) << chat.status().ToString();
  EXPECT_TRUE(chat->is_default());
  EXPECT_EQ(chat->bos_token(), "<｜begin▁of▁sentence｜>");
  EXPECT_EQ(chat->eos_token(), "<｜end▁of▁sentence｜>");

  std::ofstream(dir.File("tokenizer_config.json"))
      << json{{"chat_template", "<{{ bos_token }}|{{ messages | length }}>"}}.dump();
  chat = ChatTemplate::FromModelDir(dir.path(), *tokenizer);
  ASSERT_TRUE(chat.ok()) << chat.status().ToString();
  EXPECT_EQ(*chat->Render(kConversation, true), "<<｜begin▁of▁sentence｜>|4>");
}

TEST(JinjaTemplate, RefusesWhatItDoesNotReproduce) {
  for (const char* source :
       {"{% macro m() %}{% endmacro %}", "{{ x | tojson }}", "{{ x.strip() }}", "{{ 1.5 }}",
        "{{ {'a': 1} }}", "{% for a, b in x %}{% endfor %}", "{% raw %}{% endraw %}", "{{ 4 / 2 }}",
        "{% for x in y if x %}{% endfor %}", "{{ x is divisibleby 2 }}", "{% if x %}",
        "{{ 'unterminated }}", "{{ x[::2] }}", "{% break %}"}) {
    auto t = JinjaTemplate::Compile(source);
    ASSERT_FALSE(t.ok()) << source;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find("line 1"), std::string::npos) << t.status().message();
  }
  // Values it cannot print exactly as Python would are refused when rendered.
  EXPECT_EQ(Render("{{ x }}", {{"x", 1.5}}).rfind("RENDER ERROR", 0), 0u);
  EXPECT_EQ(Render("{{ x }}", {{"x", {1, 2}}}).rfind("RENDER ERROR", 0), 0u);
  EXPECT_EQ(Render("{{ x.items }}", {{"x", json::object()}}).rfind("RENDER ERROR", 0), 0u);
  EXPECT_EQ(Render("{% for c in 'abc' %}{% endfor %}", json::object()).rfind("RENDER ERROR", 0),
            0u);
}

TEST(JinjaTemplate, PythonSemantics) {
  json ctx = {{"n", 7}, {"s", "ab"}, {"l", {1, 2, 3}}, {"t", true}};
  EXPECT_EQ(Render("{{ t }}{{ none }}{{ missing }}{{ n ~ t }}", ctx), "TrueNone7True");
  EXPECT_EQ(Render("{{ -7 % 3 }} {{ 7 % -3 }} {{ t + 1 }} {{ s * 2 }} {{ 1 == t }}", ctx),
            "2 -2 2 abab True");
  EXPECT_EQ(Render("{{ s or 'x' }}{{ '' or 'x' }}{{ 0 and 'x' }}", ctx), "abx0");
  EXPECT_EQ(Render("{{ l[-1] }}{{ l[5] }}{{ l[1:] | length }}{{ 1 < n < 9 }}", ctx), "32True");
  EXPECT_EQ(Render("{{ 'é' | length }}{{ '\\u00e9\\x41\\n' }}", ctx), "1éA\n");
  // The errors jinja2 raises are errors here too.
  EXPECT_EQ(Render("{{ s + missing }}", ctx).rfind("RENDER ERROR", 0), 0u);
  EXPECT_EQ(Render("{{ n % 0 }}", ctx).rfind("RENDER ERROR", 0), 0u);
  EXPECT_EQ(Render("{{ missing.x }}", ctx).rfind("RENDER ERROR", 0), 0u);
  EXPECT_EQ(Render("{{ raise_exception('no ' ~ n) }}", ctx), "RENDER ERROR: no 7");
}

TEST(JinjaTemplate, WhitespaceControlAndScopes) {
  // trim_blocks + lstrip_blocks, as transformers renders chat templates.
  EXPECT_EQ(Render("  {% if true %}\n  x\n  {% endif %}\ny", json::object()), "  x\ny");
  EXPECT_EQ(Render("a  {%- if true -%}  b  {%- endif %}", json::object()), "ab");
  EXPECT_EQ(Render("a\n", json::object()), "a");  // one trailing newline dropped
  // A loop body sees its own assignments only for the current iteration.
  EXPECT_EQ(
      Render("{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = 5 %}{{ x }}{% endfor %}{{ x }}",
             json::object()),
      "15151");
  // jinja2's compiler quirk: a name the template assigns later is undefined in an earlier loop.
  EXPECT_EQ(Render("{% for i in [1] %}[{{ x }}]{% endfor %}{% set x = 2 %}{{ x }}", {{"x", 9}}),
            "[]2");
  EXPECT_EQ(Render("[{{ x }}]{% for i in [1] %}[{{ x }}]{% endfor %}{% set x = 2 %}", {{"x", 9}}),
            "[9][9]");
}

TEST(JinjaTemplate, HostileInputsFailCleanly) {
  std::string deep(5000, '(');
  EXPECT_EQ(Render("{{ " + deep + "1" + std::string(5000, ')') + " }}", json::object())
                .rfind("COMPILE ERROR", 0),
            0u);
  std::string nested;
  for (int i = 0; i < 1000; ++i) nested += "{% if true %}";
  EXPECT_EQ(Render(nested, json::object()).rfind("COMPILE ERROR", 0), 0u);
  auto t =
      JinjaTemplate::Compile("{% for a in l %}{% for b in l %}{{ s }}{% endfor %}{% endfor %}");
  ASSERT_TRUE(t.ok());
  json big = {{"l", std::vector<int>(200, 0)}, {"s", std::string(100, 'x')}};
  auto out = t->Render(big, /*max_output_bytes=*/1 << 20);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("exceeds"), std::string::npos);

  std::string doubling = "{% set l = [[1, 'x']] %}";
  for (int i = 0; i < 64; ++i)
    doubling += "{% set l = l + l %}{% set s = (s or 'ab') ~ (s or 'ab') %}";
  EXPECT_NE(Render(doubling, json::object(), 1 << 20).find("exceeds"), std::string::npos);
  EXPECT_NE(Render("{{ ([[1, 2, 3]] * 100000000) | length }}", json::object()).find("exceeds"),
            std::string::npos);

  // Loops that would run for ever in practice stop at the step budget.
  std::string loops =
      "{% for a in l %}{% for b in l %}{% for c in l %}{% for d in l %}"
      "{% endfor %}{% endfor %}{% endfor %}{% endfor %}";
  EXPECT_NE(Render(loops, {{"l", std::vector<int>(100, 0)}}).find("steps"), std::string::npos);
}

}  // namespace
}  // namespace kubemoe::router
