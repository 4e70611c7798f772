"""Checks kubemoe's Jinja subset (router/jinja_template.h) against Python's jinja2.

Every case is rendered by tests/tools/chat_template_main and by jinja2 configured as transformers
configures it for chat templates (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, a
raise_exception global). Where jinja2 renders, ours must give the same bytes; where jinja2 fails,
ours must fail too. Cases outside the subset (namespace(), macros, filters we lack, ...) must be
refused by ours, never rendered approximately.

Cases: DeepSeek-V2-Chat's real chat template through ChatTemplate (tokenizer_config.json with
AddedToken objects), hand-written templates for each construct, and random templates built from
the supported constructs with random whitespace control.

Environment: KUBEMOE_CHAT_TEMPLATE_BIN (set by ctest) or KUBEMOE_BINARY_DIR;
KUBEMOE_CHAT_TEMPLATE_SEED and KUBEMOE_CHAT_TEMPLATE_RANDOM (count) to replay or widen the
random part. Prints 'N passed, M failed'.
"""

import json
import os
import random
import subprocess
import sys
import tempfile

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from checks import check, results




def tool_binary():
    path = os.environ.get("KUBEMOE_CHAT_TEMPLATE_BIN")
    if not path:
        path = os.path.join(os.environ.get("KUBEMOE_BINARY_DIR", "build"), "tests", "chat_template_main")
    return path


def jinja_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env.globals["raise_exception"] = raise_exception
    return env


ENV = jinja_env()


def render_python(template, context):
    try:
        return True, ENV.from_string(template).render(**context)
    except Exception as e:  # any jinja2 or Python error: the C++ side must fail as well
        return False, f"{type(e).__name__}: {e}"


def run_cpp(cases):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"cases": cases}, f)
        path = f.name
    try:
        out = subprocess.run([tool_binary(), path], capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(path)
    if out.returncode != 0:
        raise RuntimeError(f"chat_template_main failed ({out.returncode}): {out.stderr}")
    return json.loads(out.stdout)


# DeepSeek-V2-Chat's tokenizer_config.json (the fields a chat template reads), as published.
DEEPSEEK_V2_CHAT_CONFIG = {
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": {"__type": "AddedToken", "content": "<｜begin▁of▁sentence｜>", "lstrip": False,
                  "normalized": True, "rstrip": False, "single_word": False},
    "eos_token": {"__type": "AddedToken", "content": "<｜end▁of▁sentence｜>", "lstrip": False,
                  "normalized": True, "rstrip": False, "single_word": False},
    "pad_token": {"__type": "AddedToken", "content": "<｜end▁of▁sentence｜>", "lstrip": False,
                  "normalized": True, "rstrip": False, "single_word": False},
    "legacy": True,
    "model_max_length": 16384,
    "unk_token": None,
    "tokenizer_class": "LlamaTokenizerFast",
    "chat_template": "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n\\n' }}{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}",
}

# A multi-line template (TinyLlama-Chat's shape): trim_blocks and lstrip_blocks matter here.
MULTILINE_TEMPLATE = """{% for message in messages %}
{% if message['role'] == 'user' %}
{{ '<|user|>\\n' + message['content'] + eos_token }}
{% elif message['role'] == 'system' %}
{{ '<|system|>\\n' + message['content'] + eos_token }}
{% elif message['role'] == 'assistant' %}
{{ '<|assistant|>\\n'  + message['content'] + eos_token }}
{% endif %}
{% if loop.last and add_generation_prompt %}
{{ '<|assistant|>' }}
{% endif %}
{% endfor %}"""

# Llama-2 / Mistral style: system message folded into the first user turn, alternation enforced.
ALTERNATING_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content | trim + ' ' + eos_token }}{% endif %}"
    "{% endfor %}")
# The same without the .strip() method call (which the subset refuses): must render identically.
ALTERNATING_SUPPORTED = ALTERNATING_TEMPLATE.replace("content.strip()", "content | trim")

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3+3?"}],
    [{"role": "user", "content": "ünïcödé ✓ 😀 {{ not a tag }} {% neither %}\r\n\ttabs  "},
     {"role": "assistant", "content": "  spaced\u3000\u00a0 "}],
    [{"role": "system", "content": ""}, {"role": "user", "content": "\n\n"}],
    [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],  # breaks alternation
    [{"role": "tool", "content": "ignored by DeepSeek"}, {"role": "user", "content": "x"}],
]


def fixed_cases():
    """(name, case for the tool, python renderer or None when ours must refuse)."""
    cases = []
    for i, conv in enumerate(CONVERSATIONS):
        for gen in (True, False):
            config = DEEPSEEK_V2_CHAT_CONFIG
            ctx = {"messages": conv, "add_generation_prompt": gen,
                   "bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>",
                   "pad_token": "<｜end▁of▁sentence｜>", "tools": None, "documents": None}
            cases.append((f"deepseek-v2-chat conv{i} gen={gen}",
                          {"tokenizer_config": config, "messages": conv, "add_generation_prompt": gen},
                          (config["chat_template"], ctx)))
            for tname, tsrc in (("multiline", MULTILINE_TEMPLATE), ("alternating", ALTERNATING_SUPPORTED)):
                tctx = dict(ctx, bos_token="<s>", eos_token="</s>")
                cases.append((f"{tname} conv{i} gen={gen}", {"template": tsrc, "context": tctx},
                               (tsrc, tctx)))
    # No chat_template in the config: the documented default, which is DeepSeek-V2-Chat's.
    conv = CONVERSATIONS[1]
    bare = {"bos_token": "<B>", "eos_token": {"content": "<E>"}}
    cases.append(("default template", {"tokenizer_config": bare, "messages": conv},
                  (DEEPSEEK_V2_CHAT_CONFIG["chat_template"],
                   {"messages": conv, "add_generation_prompt": True, "bos_token": "<B>", "eos_token": "<E>"})))
    cases.append(("named templates", {"tokenizer_config": {"chat_template": [
        {"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ bos_token }}"}],
        "bos_token": "<B>"}, "messages": conv}, ("D{{ bos_token }}", {"bos_token": "<B>"})))

    v = {"s": "Ab c", "t": "", "n": 7, "m": -3, "z": 0, "b": True, "nothing": None,
         "items": [1, "two", None, True], "msgs": CONVERSATIONS[1], "d": {"k": "v", "n": 1}}
    constructs = {
        "text only": "plain text {not a tag} %} }}",
        "trailing newline dropped": "a\n",
        "two trailing newlines": "a\n\n",
        "crlf": "a\r\nb\rc{% if true %}\r\nx{% endif %}\r\n",
        "output types": "{{ s }}|{{ n }}|{{ m }}|{{ b }}|{{ nothing }}|{{ missing }}|{{ true }}|{{ none }}",
        "concat": "{{ s + '-' + s }}{{ s ~ n ~ b ~ nothing ~ missing }}",
        "escapes": r"""{{ 'a\nb\tc\\d\'e"f' }}{{ "g\"h\x41\u00e9\U0001F600\101" }}{{ 'un\known' }}""",
        "adjacent strings": "{{ 'a' 'b' \"c\" }}",
        "comparisons": "{{ n == 7 }}{{ n != 7 }}{{ n < 8 }}{{ n > 8 }}{{ n <= 7 }}{{ n >= 8 }}"
                       "{{ s == 'Ab c' }}{{ 'a' < 'b' }}{{ 1 == true }}{{ missing == missing }}"
                       "{{ 1 < n < 10 }}{{ 1 < n < 3 }}{{ nothing == none }}{{ items == [1, 'two', none, true] }}",
        "logic": "{{ b and s }}{{ z or s }}{{ not b }}{{ t or 'empty' }}{{ nothing and 1 }}"
                 "{{ not missing }}{{ z and missing }}",
        "in": "{{ 'b' in s }}{{ 'x' not in s }}{{ 'two' in items }}{{ 3 in items }}{{ 'k' in d }}"
              "{{ 'a' in missing }}{{ 1 in items }}",
        "arithmetic": "{{ n + m }}{{ n - m }}{{ n * m }}{{ n % 3 }}{{ m % 5 }}{{ n % -2 }}{{ -n }}{{ +m }}"
                      "{{ true + 1 }}{{ 10 - 2 - 3 }}{{ 1 + 2 * 3 }}{{ 1_000 }}",
        "precedence": "{{ 'a' ~ 1 + 2 }}{{ not 1 == 2 }}{{ 1 + 2 == 3 and 'x' }}{{ (1 + 2) * 3 }}",
        "ternary": "{{ 'yes' if b else 'no' }}{{ 'yes' if z else 'no' }}{{ 'x' if z }}{{ 1 if z else 2 if b else 3 }}",
        "indexing": "{{ msgs[0]['role'] }}{{ msgs[-1].content }}{{ items[1] }}{{ items[9] }}{{ d.k }}"
                    "{{ d['k'] }}{{ d.nope }}{{ items.0 }}{{ msgs[1]['nope'] }}",
        "slices": "{% for x in items[1:] %}{{ x }},{% endfor %}|{% for x in items[:-2] %}{{ x }},{% endfor %}"
                  "|{% for x in items[-3:3] %}{{ x }},{% endfor %}|{% for x in items[5:] %}{{ x }}{% endfor %}"
                  "|{{ items[1:3] | length }}|{% for x in items[:] %}{{ x }}{% endfor %}",
        "loop variables": "{% for m in msgs %}{{ loop.index0 }}{{ loop.index }}{{ loop.revindex }}"
                          "{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}",
        "nested loops": "{% for a in items %}{% for b in msgs %}{{ loop.index }}{% endfor %}{{ loop.index }};{% endfor %}",
        "loop over undefined": "[{% for x in missing %}{{ x }}{% endfor %}]",
        "if chain": "{% for x in [1, 2, 3, 4] %}{% if x == 1 %}one{% elif x == 2 %}two{% elif x == 3 %}three"
                    "{% else %}many{% endif %}{% endfor %}",
        "set and scope": "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = x + 10 %}{{ x }}{% endfor %}{{ x }}"
                         "{% if true %}{% set x = 5 %}{% endif %}{{ x }}",
        "set in loop persists?": "{% for i in [1, 2, 3] %}{% if loop.first %}{% set y = 'first' %}{% endif %}"
                                 "{{ y }};{% endfor %}{{ y }}",
        "shadow context": "{% set s = 'shadow' %}{{ s }}{% for s in [1] %}{{ s }}{% endfor %}{{ s }}",
        "tests": "{{ n is defined }}{{ missing is defined }}{{ missing is undefined }}{{ nothing is none }}"
                 "{{ s is string }}{{ n is string }}{{ d is mapping }}{{ b is boolean }}{{ n is integer }}"
                 "{{ b is integer }}{{ b is true }}{{ z is false }}{{ s is not none }}{{ not missing is defined }}",
        "filters": "[{{ '  pad \u3000\n' | trim }}][{{ s | length }}][{{ items | count }}][{{ d | length }}]"
                   "[{{ 'ünï' | length }}][{{ n | string }}][{{ missing | trim }}][{{ missing | length }}]"
                   "[{{ s | trim | length }}]",
        "comments": "a{# a comment with {{ tags }} #}b{#- eats -#}  c {#+ keeps +#}\nd",
        "whitespace control": "a  \n  {%- if true -%}  \n  b  \n  {%- endif -%}  \n  c {{- ' d ' -}}  e",
        "unicode whitespace control": "a\u3000\u00a0\u2028 {{- 'x' -}} \u3000\u205fb",
        "trim_blocks": "{% if true %}\nA\n{% endif %}\nB\n{% if true +%}\nC\n{%+ endif %}\nD",
        "lstrip_blocks": "  {% if true %}\n  \tX\n\t {% endif %}\n  {{ 'Y' }}\n x {% if true %}Z{% endif %}",
        "lstrip after tag": "{% if true %}  {% if true %}x{% endif %}{% endif %}",
        "lstrip at start": "   {% if true %}x{% endif %}",
        "raise": "{% if n > 5 %}{{ raise_exception('too big: ' ~ n) }}{% endif %}",
        "raise unused": "{% if n > 50 %}{{ raise_exception('unused') }}{% endif %}ok",
        "list literal": "{% for x in ['a', 1, none, [2]] %}{{ x is string }}{% endfor %}{{ [] | length }}{{ [1,] | length }}",
        "list + list": "{% for x in items + [5] %}{{ x }}{% endfor %}",
        "undefined plus": "{{ s + missing }}",
        "undefined attr": "{{ missing.x }}",
        "undefined item": "{{ missing[0] }}",
        "string + int": "{{ s + n }}",
        "int compare str": "{{ n < s }}",
        "modulo by zero": "{{ n % z }}",
        "iterate none": "{% for x in nothing %}{% endfor %}",
        "in int": "{{ 1 in n }}",
        "unary minus string": "{{ -s }}",
    }
    for name, tpl in constructs.items():
        cases.append((name, {"template": tpl, "context": v}, (tpl, v)))

    refused = {
        "namespace": "{% set ns = namespace(found=false) %}{{ ns.found }}",
        "set attribute": "{% set ns.found = true %}",
        "macro": "{% macro m() %}x{% endmacro %}{{ m() }}",
        "raw": "{% raw %}{{ x }}{% endraw %}",
        "unknown filter": "{{ s | tojson }}",
        "filter args": "{{ s | trim('x') }}",
        "method call": "{{ s.strip() }}",
        "dict literal": "{{ {'a': 1}['a'] }}",
        "float literal": "{{ 1.5 }}",
        "division": "{{ 4 / 2 }}",
        "floor division": "{{ 4 // 2 }}",
        "power": "{{ 2 ** 3 }}",
        "tuple": "{% set a, b = 1, 2 %}",
        "loop filter": "{% for x in items if x %}{{ x }}{% endfor %}",
        "for else": "{% for x in items %}{% else %}none{% endfor %}",
        "loop.cycle": "{% for x in items %}{{ loop.cycle('a', 'b') }}{% endfor %}",
        "loop.previtem": "{% for x in items %}{{ loop.previtem }}{% endfor %}",
        "test with argument": "{{ n is divisibleby 3 }}",
        "unknown test": "{{ s is iterable }}",
        "print list": "{{ items }}",
        "print mapping": "{{ d }}",
        "dict method": "{{ d.items }}",
        "string index": "{{ s[0] }}",
        "iterate mapping": "{% for k in d %}{{ k }}{% endfor %}",
        "iterate string": "{% for c in s %}{{ c }}{% endfor %}",
        "block set": "{% set x %}body{% endset %}",
        "break": "{% for x in items %}{% break %}{% endfor %}",
        "include": "{% include 'x' %}",
        "float value": "{{ f }}",
        "step slice": "{{ items[::2] | length }}",
        "strftime": "{{ strftime_now('%Y') }}",
        "unclosed": "{% if true %}x",
        "deepseek-v3 template": "{% set ns = namespace(is_first=false, system_prompt='') %}{%- for message in messages %}"
                                "{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}"
                                "{%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}",
    }
    fv = dict(v, f=1.5)
    for name, tpl in refused.items():
        cases.append(("refused: " + name, {"template": tpl, "context": fv}, None))
    return cases


# ---- random templates from the supported constructs ----------------------------------------

TEXT_CHARS = ["a", "b", " ", " ", "\t", "\n", "\n", "é", "✓", "\u3000", "\u00a0", "x", "-", "+", "}", "%"]
NAMES = ["s1", "s2", "n1", "n2", "b", "nothing", "missing"]


def rand_text(rng):
    return "".join(rng.choice(TEXT_CHARS) for _ in range(rng.randint(0, 6)))


def rand_str_lit(rng):
    body = "".join(rng.choice(["a", " ", "\\n", "\\t", "é", "\\'", "\"", "x", "\\\\"]) for _ in range(rng.randint(0, 4)))
    return "'" + body + "'"


def gen_expr(rng, depth, loop_vars):
    """An expression whose value prints (string, int, bool, None or undefined)."""
    if depth <= 0:
        choices = [lambda: rng.choice(NAMES), lambda: rand_str_lit(rng), lambda: str(rng.randint(-3, 9)),
                   lambda: rng.choice(["true", "false", "none"])]
        if loop_vars:
            choices.append(lambda: rng.choice(loop_vars))
            choices.append(lambda: "loop." + rng.choice(["index", "index0", "first", "last", "length", "revindex"]))
        return rng.choice(choices)()
    d = depth - 1
    kind = rng.randint(0, 11)
    if kind == 0:
        return f"{gen_expr(rng, d, loop_vars)} ~ {gen_expr(rng, d, loop_vars)}"
    if kind == 1:
        return f"({gen_expr(rng, d, loop_vars)} + {gen_expr(rng, d, loop_vars)})"
    if kind == 2:
        op = rng.choice(["==", "!=", "<", ">", "<=", ">="])
        return f"({gen_expr(rng, d, loop_vars)} {op} {gen_expr(rng, d, loop_vars)})"
    if kind == 3:
        return f"({gen_expr(rng, d, loop_vars)} {rng.choice(['and', 'or'])} {gen_expr(rng, d, loop_vars)})"
    if kind == 4:
        return f"not {gen_expr(rng, d, loop_vars)}"
    if kind == 5:
        test = rng.choice(["defined", "undefined", "none", "string", "integer", "boolean", "not defined"])
        return f"({gen_expr(rng, d, loop_vars)} is {test})"
    if kind == 6:
        return f"({gen_expr(rng, d, loop_vars)} if {gen_expr(rng, d, loop_vars)} else {gen_expr(rng, d, loop_vars)})"
    if kind == 7:
        return f"({gen_expr(rng, d, loop_vars)} | {rng.choice(['trim', 'length', 'string'])})"
    if kind == 8:
        return f"({gen_expr(rng, d, loop_vars)} {rng.choice(['in', 'not in'])} {rng.choice(['s1', 'lst', 'msg0', 'missing'])})"
    if kind == 9:
        return f"msgs[{rng.randint(-4, 4)}]['{rng.choice(['role', 'content', 'nope'])}']"
    if kind == 10:
        return f"({gen_expr(rng, d, loop_vars)} {rng.choice(['-', '*', '%'])} {gen_expr(rng, d, loop_vars)})"
    return f"lst[{rng.randint(-5, 5)}]"


def open_tag(rng, kind):
    return "{" + kind + rng.choice(["", "", "-", "+"] if kind == "%" else ["", "", "-"]) + " "


def close_tag(rng, kind):
    return " " + rng.choice(["", "", "-", "+"] if kind == "%" else ["", "", "-"]) + kind + "}"


def gen_body(rng, depth, loop_vars):
    parts = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.randint(0, 6)
        if kind <= 1:
            parts.append(rand_text(rng))
        elif kind == 2:
            parts.append(open_tag(rng, "{") + gen_expr(rng, rng.randint(0, 3), loop_vars) + close_tag(rng, "}"))
        elif kind == 3 and depth > 0:
            n_elif = rng.randint(0, 2)
            s = open_tag(rng, "%") + "if " + gen_expr(rng, 2, loop_vars) + close_tag(rng, "%")
            s += gen_body(rng, depth - 1, loop_vars)
            for _ in range(n_elif):
                s += open_tag(rng, "%") + "elif " + gen_expr(rng, 2, loop_vars) + close_tag(rng, "%")
                s += gen_body(rng, depth - 1, loop_vars)
            if rng.random() < 0.5:
                s += open_tag(rng, "%") + "else" + close_tag(rng, "%") + gen_body(rng, depth - 1, loop_vars)
            parts.append(s + open_tag(rng, "%") + "endif" + close_tag(rng, "%"))
        elif kind == 4 and depth > 0:
            var = rng.choice(["m", "x", "s1"])
            seq = rng.choice(["msgs", "lst", "lst[1:]", "msgs[:-1]", "missing", "[1, 'a']"])
            s = open_tag(rng, "%") + f"for {var} in {seq}" + close_tag(rng, "%")
            s += gen_body(rng, depth - 1, loop_vars + [var])
            parts.append(s + open_tag(rng, "%") + "endfor" + close_tag(rng, "%"))
        elif kind == 5:
            parts.append(open_tag(rng, "%") + f"set {rng.choice(['s1', 'n1', 'v'])} = "
                         + gen_expr(rng, 2, loop_vars) + close_tag(rng, "%"))
        else:
            parts.append(open_tag(rng, "#") + "c" + close_tag(rng, "#"))
    return "".join(parts)


def random_context(rng):
    msgs = [{"role": rng.choice(["user", "assistant", "system"]), "content": rand_text(rng)}
            for _ in range(rng.randint(0, 3))]
    return {"s1": rand_text(rng), "s2": rng.choice(["", "a", "b"]), "n1": rng.randint(-2, 5),
            "n2": rng.randint(-2, 2), "b": rng.random() < 0.5, "nothing": None,
            "lst": [rng.choice([1, "a", None, True, 0]) for _ in range(rng.randint(0, 3))],
            "msgs": msgs, "msg0": msgs[0] if msgs else {"role": "user"}}


def random_cases(seed, count):
    rng = random.Random(seed)
    cases = []
    for i in range(count):
        tpl = gen_body(rng, 2, [])
        ctx = random_context(rng)
        cases.append((f"random seed={seed} #{i}: {tpl!r}", {"template": tpl, "context": ctx}, (tpl, ctx)))
    return cases


def main():
    seed = int(os.environ.get("KUBEMOE_CHAT_TEMPLATE_SEED", "20240607"))
    count = int(os.environ.get("KUBEMOE_CHAT_TEMPLATE_RANDOM", "1500"))
    cases = fixed_cases() + random_cases(seed, count)
    outputs = run_cpp([c for _, c, _ in cases])
    check("one result per case", len(outputs) == len(cases), (len(outputs), len(cases)))
    refusals_ok = 0
    random_refusals = 0
    for (name, _, expected), got in zip(cases, outputs):
        if expected is None:
            check(name, not got["ok"], f"rendered {got.get('output')!r} instead of refusing")
            if not got["ok"]:
                refusals_ok += 1
            continue
        ok, want = render_python(*expected)
        if ok and name.startswith("random") and not got["ok"] and "not supported" in got["error"]:
            random_refusals += 1  # e.g. printing a mapping: refused, never mis-rendered
        elif ok:
            check(name, got["ok"] and got["output"] == want,
                  f"jinja2 {want!r} vs ours {got.get('output', got.get('error'))!r}")
        else:
            check(name, not got["ok"], f"jinja2 failed ({want}) but ours rendered {got.get('output')!r}")
    # The random templates stay inside the subset, bar a few values it does not print.
    check("few random refusals", random_refusals <= count // 20, f"{random_refusals} of {count}")
    # The refusals must name what is unsupported, not fail obscurely.
    msgs = [got["error"] for (_, _, exp), got in zip(cases, outputs) if exp is None and not got["ok"]]
    check("refusal messages name the line", all("line" in m for m in msgs), msgs)
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
