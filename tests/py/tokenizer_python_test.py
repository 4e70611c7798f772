#!/usr/bin/env python3
"""Cross-checks the C++ tokenizer against the Python `tokenizers` package on fresh random text.

Run by ctest as `tokenizer_python` with KUBEMOE_TOKENIZE_BIN (tests/tools/tokenize_main.cc). For the
committed tokenizer and for variants of it that exercise other loader paths (GPT-2 style ByteLevel
with add_prefix_space and its regex, "a b" string merges, every Split behavior, invert, lstrip /
rstrip / single_word added tokens), it encodes seeded random strings (scripts, whitespace, digits,
emoji, special tokens) with both and requires identical ids, then decodes the ids with both and
requires identical text. Prints 'N passed, M failed' and exits non-zero on any mismatch.
"""

import copy
import json
import os
import random
import subprocess
import sys
import tempfile
import unicodedata

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER_JSON = os.path.join(HERE, "..", "data", "tokenizer", "tokenizer.json")
SEED = int(os.environ.get("KUBEMOE_TOKENIZER_SEED", "1234"))
STRINGS_PER_VARIANT = 300

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
FIM_HOLE = "<｜fim▁hole｜>"

POOLS = [
    ["the", "The", "expert", "router", "Hello", "world", "tokenizer", "don't", "it's", "we'll", "MoE",
     "moe", "kubemoe", "x", "ab", "quick", "QUICK", "camelCase", "snake_case"],
    [" ", "  ", "    ", "\t", "\n", "\r\n", "\n\n", " \n ", "\r", "\x0b", "\x0c", "\x1c", "\x1f",
     "\x85", "\xa0", "\u1680", "\u180e", "\u2002", "\u200b", "\u2028", "\u2029", "\u202f", "\u3000",
     "\ufeff"],
    ["0", "7", "42", "2024", "3.14", "1234567890123", "٣٤", "൮", "①②", "Ⅻ", "½", "²"],
    ["中文", "模型", "专家路由", "日本語", "ひらがな", "カタカナ", "한국어", "안녕", "龥", "一", "ࠀ", "ꀀ"],
    ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇩🇪", "❤️", "🧑🏿‍💻", "🚀", "\u200d", "\ufe0f", "🏻"],
    ["e\u0301", "a\u0308", "\u0301", "\u0323\u0302", "ก่", "क्षि", "ǅ", "ß", "İ", "ﬁ", "µ", "Ω", "K", "ῼ"],
    ["!", "?", "...", ",", ";", "--", "()", "[]", "{}", "<>", "'", "\"", "`", "@#", "$%^&*", "\\", "/",
     "！", "，", "。", "「」", "“", "”", "‘", "…", "—", "·", "¿", "«"],
    ["Ελληνικά", "русский", "Ⴀ", "Ꭰ", "𐐀𐐨", "𞤀", "Ａｂｃ", "ａ", "עברית", "العربية", "हिन्दी"],
    [BOS, EOS, USER, ASSISTANT, FIM_HOLE, "<｜", "｜>", "<｜begin▁of", "▁", "<|endoftext|>", "<s>"],
]


def random_code_point(rng):
    # Only characters assigned in Python's Unicode tables (14.0, as in the system PCRE2 10.42):
    # Oniguruma in the Python package knows newer Unicode, and characters assigned since then may
    # fall into different classes on the two sides.
    while True:
        cp = rng.choice([rng.randrange(0x20, 0x250), rng.randrange(0x250, 0x3000),
                         rng.randrange(0x3000, 0xD800), rng.randrange(0xE000, 0x10000),
                         rng.randrange(0x10000, 0x20000)])
        if not 0xD800 <= cp < 0xE000 and unicodedata.category(chr(cp)) != "Cn":
            return chr(cp)


def random_string(rng):
    parts = []
    for _ in range(rng.randint(0, 14)):
        r = rng.random()
        if r < 0.1:
            parts.append(random_code_point(rng))
        elif r < 0.13:
            parts.append(rng.choice(POOLS[0]) * rng.randint(10, 60))  # a long word
        else:
            parts.append(rng.choice(rng.choice(POOLS)))
        if rng.random() < 0.4:
            parts.append(" ")
    return "".join(parts)


def variants(base):
    """Yields (name, tokenizer.json dict) for the committed file and loader-path variants."""
    yield "committed", base

    gpt2 = copy.deepcopy(base)
    gpt2["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                             "use_regex": True}
    gpt2["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                              "use_regex": True}
    gpt2["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m
                               for m in gpt2["model"]["merges"]]
    yield "gpt2_bytelevel_string_merges", gpt2

    behaviors = copy.deepcopy(base)

    def split(pattern, behavior, invert=False, kind="Regex"):
        return {"type": "Split", "pattern": {kind: pattern}, "behavior": behavior, "invert": invert}

    behaviors["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        split("\\p{N}", "MergedWithPrevious"),
        split(" +", "MergedWithNext"),
        split("[,.;!]", "Contiguous"),
        split("qu", "Removed", kind="String"),
        split("\\s", "MergedWithPrevious", invert=True),
        split("^\\p{Lu}|\\p{Ll}$", "Isolated"),
        {"type": "Sequence", "pretokenizers": [split("[\\p{P}\\p{S}]", "Isolated")]},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": False},
    ]}
    yield "split_behaviors", behaviors

    added = copy.deepcopy(base)
    for token in added["added_tokens"]:
        if token["content"] == USER:
            token["lstrip"] = True
        if token["content"] == ASSISTANT:
            token["rstrip"] = True
    next_id = max(t["id"] for t in added["added_tokens"]) + 1
    added["added_tokens"].append({"id": next_id, "content": "moe", "single_word": True,
                                  "lstrip": False, "rstrip": False, "normalized": True,
                                  "special": False})
    added["added_tokens"].append({"id": next_id + 1, "content": "<｜begin▁of", "single_word": False,
                                  "lstrip": True, "rstrip": True, "normalized": True,
                                  "special": True})
    yield "added_token_flags", added


def run_cpp(binary, tokenizer_path, requests):
    proc = subprocess.run([binary, tokenizer_path], input="".join(json.dumps(r) + "\n" for r in requests),
                          capture_output=True, text=True, encoding="utf-8", timeout=240)
    if proc.returncode != 0:
        raise RuntimeError(f"{binary} failed ({proc.returncode}): {proc.stderr.strip()}")
    lines = [line for line in proc.stdout.split("\n") if line]
    if len(lines) != len(requests):
        raise RuntimeError(f"{binary} answered {len(lines)} lines for {len(requests)} requests")
    return [json.loads(line) for line in lines]


def main():
    binary = os.environ.get("KUBEMOE_TOKENIZE_BIN")
    if not binary:
        print("KUBEMOE_TOKENIZE_BIN is not set (run through ctest)", file=sys.stderr)
        return 2
    with open(TOKENIZER_JSON, encoding="utf-8") as f:
        base = json.load(f)
    rng = random.Random(SEED)
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in variants(base):
            path = os.path.join(tmp, name + ".json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(spec, f, ensure_ascii=False)
            reference = Tokenizer.from_file(path)
            texts = [random_string(rng) for _ in range(STRINGS_PER_VARIANT)]
            texts += ["", " ", "\n", "a" * 5000, " " * 3000 + "x", "9" * 4000]
            requests, expected, labels = [], [], []
            for text in texts:
                for special in (False, True):
                    ids = reference.encode(text, add_special_tokens=special).ids
                    requests.append({"text": text, "add_special_tokens": special})
                    expected.append(ids)
                    labels.append(f"encode(special={special})")
                    requests.append({"ids": ids, "skip_special_tokens": special})
                    expected.append(reference.decode(ids, skip_special_tokens=special))
                    labels.append(f"decode(skip={special})")
            actual = run_cpp(binary, path, requests)
            for request, want, got, label in zip(requests, expected, actual, labels):
                if want == got:
                    passed += 1
                    continue
                failed += 1
                if failed <= 20:
                    print(f"MISMATCH [{name}] {label} {request!r}\n  python: {want!r}\n  c++:    {got!r}")
    print(f"{passed} passed, {failed} failed (seed {SEED})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
