#!/usr/bin/env python3
"""Trains the small test tokenizer and writes its golden encodings.

The tokenizer has the shape of DeepSeek-V2's tokenizer.json (byte-level BPE, a Sequence of
DeepSeek's Split regexes followed by ByteLevel(add_prefix_space=False, use_regex=False), a ByteLevel
decoder, fullwidth-bar special tokens and a TemplateProcessing post-processor that prepends BOS),
but a vocabulary of about 1,200 entries learnt from text that this script generates itself.

Usage: .venv/bin/python tools/train_test_tokenizer.py [--out tests/data/tokenizer]
Writes tokenizer.json and golden.json. Training is deterministic: same package version, same output.
"""

import argparse
import json
import os
import random
import sys

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
# A non-special added token: matched on the normalized text, kept by skip_special_tokens.
FIM_HOLE = "<｜fim▁hole｜>"

# DeepSeek-V2's pre-tokenizer regexes (the Split list of its tokenizer.json), in order.
LETTERS = (  # cased letters (Unicode category LC); escapes where editors would NFC-normalize
    "A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕ"
    "ἠ-ὅὈ-Ὅὐ-ὗὙὛὝ\u1f5f-\u1f7dᾀ-ᾴᾶ-ᾼ\u1fbeῂ-ῄῆ-ῌ\u1fd0-\u1fd3\u1fd6-\u1fdbῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ"
    "\u2126ℨ\u212a-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ"
    "\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2"
    "\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943"
)
SPLIT_REGEXES = [
    "[\r\n]",
    "\\s?[" + LETTERS + "]+",
    "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
    "\\s+$",
    "[一-龥ࠀ-一가-퟿]+",
    "\\p{N}+",
]

WORDS_EN = (
    "the of and to in is that it for was on are as with his they at be this from have or by one "
    "had not but what all were when we there can an your which their said if do will each about "
    "how up out them then she many some so these would other into has more her two like him see "
    "time could no make than first been its who now people my made over did down only way find "
    "use may water long little very after words called just where most know expert router model "
    "token tokenizer server kubernetes cluster shard worker latency throughput attention mixture "
    "routing device gradient tensor checkpoint request response stream inference batch cache"
).split()
WORDS_CODE = [
    "def main():", "return x + y", "for (int i = 0; i < n; ++i) {", "}", "std::vector<int32_t> ids;",
    "if err != nil { return err }", "import numpy as np", "self.weight = nn.Parameter(w)",
    "#include <string>", "const auto& [key, value] : map", "x = {'a': 1, \"b\": [2, 3]}",
    "printf(\"%d\\n\", count);", "SELECT id, name FROM users WHERE age >= 18;", "a->b->c",
    "lambda x: x ** 2", "// TODO(kubemoe): handle this", "/* block comment */", "$ kubectl get pods -A",
]
WORDS_CJK = "我们 的 是 模型 专家 路由 深度 求索 你好 世界 中文 分词 测试 日本語 です ます 한국어 안녕하세요 감사합니다 数据 服务器".split()
EMOJI = ["😀", "👍", "👍🏽", "👨‍👩‍👧‍👦", "🇩🇪", "❤️", "🚀", "🤖", "✨", "🧑🏿‍💻"]
MISC = ["café", "naïve", "Ångström", "façade", "Ελληνικά", "русский язык", "עברית", "العربية", "हिन्दी",
        "e\u0301", "ﬁ", "Ｆｕｌｌｗｉｄｔｈ", "ǅ", "ß", "İstanbul", "…", "—", "“quoted”", "«»", "¿Qué?"]


def training_text(seed: int = 20240605) -> list:
    """Returns a deterministic list of varied lines (English, code, CJK, emoji, numbers)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(3000):
        kind = rng.randrange(6)
        if kind == 0:
            words = [rng.choice(WORDS_EN) for _ in range(rng.randint(4, 14))]
            words[0] = words[0].capitalize()
            lines.append(" ".join(words) + rng.choice([".", "!", "?", ",", ":", ";", ""]))
        elif kind == 1:
            indent = rng.choice(["", "  ", "    ", "\t"])
            lines.append(indent + rng.choice(WORDS_CODE))
        elif kind == 2:
            lines.append("".join(rng.choice(WORDS_CJK) for _ in range(rng.randint(2, 8))) +
                         rng.choice(["。", "，", "！", "？", ""]))
        elif kind == 3:
            lines.append(" ".join(str(rng.randint(0, 10 ** rng.randint(1, 12))) for _ in range(3)) +
                         f" {rng.random():.4f} {rng.choice(EMOJI)}")
        elif kind == 4:
            lines.append(" ".join(rng.choice(MISC + EMOJI) for _ in range(rng.randint(2, 6))))
        else:
            lines.append(f"{USER}{rng.choice(WORDS_EN)} {rng.choice(WORDS_CJK)}{ASSISTANT}"
                         f"{rng.choice(WORDS_CODE)}{EOS}")
    return lines


def build_tokenizer(vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())  # no unk token: the byte alphabet covers every input
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r), behavior="isolated", invert=False) for r in SPLIT_REGEXES] +
        [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    special = [AddedToken(t, special=True, normalized=False) for t in (BOS, EOS, USER, ASSISTANT)]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_text(), trainer=trainer)
    tok.add_tokens([AddedToken(FIM_HOLE, special=False, normalized=True)])
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B:1", special_tokens=[(BOS, bos_id)])
    return tok


def golden_strings() -> list:
    return [
        "",
        "Hello, world!",
        "Hello world",
        " leading space",
        "   three leading spaces and trailing   ",
        "tabs\tand\t\ttabs",
        "line one\nline two\r\nline three\n\n\n",
        " \n \t\n",
        "   ",
        "punctuation!!! ??? ... ;;; --- (brackets) [x] {y} <z>",
        "numbers 0 12 345 6789 1234567890123456789 3.14159 -42 1e10",
        "9999999999999999999999999999999999999999",
        "中文分词测试，我们的模型。",
        "日本語のテキストです",
        "한국어 안녕하세요",
        "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flag 🇩🇪 heart ❤️ coder 🧑🏿‍💻",
        "combining e\u0301 a\u0308 o\u0302\u0323 and precomposed é",
        "Ελληνικά русский עברית العربية हिन्दी",
        "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ！",
        f"{BOS}Hello{EOS}",
        f"{USER}What is MoE?{ASSISTANT}A mixture of experts.{EOS}",
        f"text before {BOS} inside {EOS} after",
        f"{USER}{USER}{ASSISTANT}",
        f"code {FIM_HOLE} hole",
        "<｜begin▁of▁sentence", "<｜end▁of▁sentence｜",
        "def main():\n    return x + y  # comment\n",
        "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
        "a" * 300,
        "supercalifragilisticexpialidocious" * 8,
        "ǅungla ß İstanbul ﬁne",
        "\u00a0non-breaking\u2003em\u3000ideographic\u2028line",
        "mixed中文English123😀",
        "$ kubectl get pods -A | grep kubemoe",
        "“smart quotes” ‘single’ — dash … ellipsis",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "tokenizer"))
    parser.add_argument("--vocab-size", type=int, default=1200)
    args = parser.parse_args()

    tok = build_tokenizer(args.vocab_size)
    os.makedirs(args.out, exist_ok=True)
    tok_path = os.path.join(args.out, "tokenizer.json")
    tok.save(tok_path, pretty=False)
    # Re-load so the golden values come from exactly what the file says.
    tok = Tokenizer.from_file(tok_path)

    cases = []
    for text in golden_strings():
        with_special = tok.encode(text, add_special_tokens=True).ids
        without = tok.encode(text, add_special_tokens=False).ids
        cases.append({
            "text": text,
            "ids": without,
            "ids_with_special": with_special,
            "decoded": tok.decode(with_special, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(with_special, skip_special_tokens=True),
        })
    golden = {
        "generator": "tools/train_test_tokenizer.py",
        "tokenizers_version": tokenizers.__version__,
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "bos_id": tok.token_to_id(BOS),
        "eos_id": tok.token_to_id(EOS),
        "cases": cases,
    }
    with open(os.path.join(args.out, "golden.json"), "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"vocab size {golden['vocab_size']}, {len(cases)} golden cases, "
          f"{os.path.getsize(tok_path)} bytes in {tok_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
