"""End-to-end checks of the `kubemoe` CLI (make-model, inspect, generate), including bad input.

Run by ctest (test `cli`) with KUBEMOE_BIN pointing at the CLI.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

from deepseek_v2_tensors import parameter_count
from tokenizers import Tokenizer
from checks import check, results

KUBEMOE = os.environ["KUBEMOE_BIN"]
SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(SOURCE, "data", "configs")



def run(*args):
    return subprocess.run([KUBEMOE, *args], capture_output=True, text=True, timeout=120)


def run_bytes(*args):
    """Like run, but stdout stays bytes so its UTF-8 validity can be checked."""
    return subprocess.run([KUBEMOE, *args], capture_output=True, timeout=120)


def utf8(data):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


# The summary `generate` writes to stderr: prompt/generated counts and two throughput figures.
GENERATE_SUMMARY = re.compile(r"prompt (\d+) tokens, generated (\d+) \((stop|length)\); "
                              r"prefill ([0-9.]+) tokens/s, decode ([0-9.]+) tokens/s")


def generate(model, prompt, *flags):
    return run_bytes("generate", "--model", model, "--prompt", prompt, *flags)


def check_generate(tiny, tmp):
    """`kubemoe generate` on the tiny preset: seeded sampling is reproducible, output is UTF-8."""
    tokenizer = Tokenizer.from_file(os.path.join(tiny, "tokenizer.json"))
    sampled = ["--max-tokens", "8", "--temperature", "0.8"]
    first = generate(tiny, "Hello", *sampled, "--seed", "3")
    second = generate(tiny, "Hello", *sampled, "--seed", "3")
    check("generate seeded exit", first.returncode == 0 and second.returncode == 0,
          first.stderr + second.stderr)
    check("generate same seed, same stdout", first.stdout == second.stdout and first.stdout,
          (first.stdout, second.stdout))
    # Sampling really depends on the seed: over several seeds not every output is the same.
    others = {generate(tiny, "Hello", *sampled, "--seed", str(s)).stdout for s in (4, 5, 6, 7)}
    check("generate seed matters", len(others | {first.stdout}) > 1, others)

    greedy = generate(tiny, "Hello", "--max-tokens", "8", "--temperature", "0", "--seed", "1")
    text = utf8(greedy.stdout)
    check("generate greedy exit", greedy.returncode == 0, greedy.stderr)
    check("generate greedy valid UTF-8", text is not None, greedy.stdout)
    check("generate echoes prompt", text is not None and text.startswith("Hello"), text)
    # Greedy ignores the seed.
    greedy2 = generate(tiny, "Hello", "--max-tokens", "8", "--temperature", "0", "--seed", "2")
    check("generate greedy seed-independent", greedy.stdout == greedy2.stdout,
          (greedy.stdout, greedy2.stdout))
    summary = GENERATE_SUMMARY.search(greedy.stderr.decode("utf-8", "replace"))
    check("generate summary line", summary is not None, greedy.stderr)
    if summary:
        prompt_tokens, generated, finish, prefill, decode = summary.groups()
        expected = len(tokenizer.encode("Hello").ids)
        check("generate prompt tokens", int(prompt_tokens) == expected,
              (prompt_tokens, expected))
        check("generate at most max-tokens", int(generated) <= 8
              and (finish == "stop" or int(generated) == 8), summary.group(0))
        # Decode steps exist only after the first sampled token.
        check("generate tokens/s positive",
              float(prefill) > 0 and (float(decode) > 0 or int(generated) <= 1), summary.group(0))

    # CJK and emoji in the prompt: echoed byte for byte, encoded as the tokenizer does.
    wide = "你好，世界 🌍🚀 テスト"
    out = generate(tiny, wide, "--max-tokens", "6", "--temperature", "0")
    text = utf8(out.stdout)
    check("generate CJK+emoji exit", out.returncode == 0, out.stderr)
    check("generate CJK+emoji UTF-8", text is not None and text.startswith(wide), out.stdout)
    summary = GENERATE_SUMMARY.search(out.stderr.decode("utf-8", "replace"))
    expected = len(tokenizer.encode(wide).ids)
    check("generate CJK+emoji prompt tokens",
          summary is not None and int(summary.group(1)) == expected, (out.stderr, expected))

    # Bad input: a clear message naming the problem, non-zero exit.
    out = generate(tiny, "Hello", "--max-tokens", "0")
    err = out.stderr.decode("utf-8", "replace")
    check("generate --max-tokens 0", out.returncode != 0 and "--max-tokens" in err,
          (out.returncode, err))
    missing = os.path.join(tmp, "no-such-model")
    out = generate(missing, "Hello")
    err = out.stderr.decode("utf-8", "replace")
    check("generate missing --model", out.returncode != 0 and missing in err, (out.returncode, err))
    empty = os.path.join(tmp, "empty-model")
    os.makedirs(empty)
    out = generate(empty, "Hello")
    err = out.stderr.decode("utf-8", "replace")
    check("generate model dir without files", out.returncode != 0 and "tokenizer.json" in err,
          (out.returncode, err))


def grouped(n):
    return f"{n:,}"


# The released DeepSeek-V2: ~236B total, ~21B activated, and the KV-cache comparisons.
v2 = run("inspect", os.path.join(CONFIGS, "deepseek-v2.json"), "--vs-deepseek-67b")
check("inspect v2 exit", v2.returncode == 0, v2.stderr)
with open(os.path.join(CONFIGS, "deepseek-v2.json")) as f:
    v2_config = json.load(f)
check("v2 total = sum of tensor sizes", grouped(parameter_count(v2_config)) in v2.stdout, v2.stdout)
check("v2 ~236B", "235.74B" in v2.stdout, v2.stdout)
check("v2 ~21B activated", "21.38B" in v2.stdout, v2.stdout)
check("v2 MLA elements", "(512 + 64) x 60 = 34,560" in v2.stdout, v2.stdout)
check("v2 MHA elements", "2 x 128 x 128 x 60 = 1,966,080" in v2.stdout, v2.stdout)
check("v2 98.24% smaller than MHA", "98.24% smaller" in v2.stdout, v2.stdout)
check("v2 vs 67B 93.34%", "93.34% smaller" in v2.stdout, v2.stdout)
check("config-only", "weights: none (config only)" in v2.stdout, v2.stdout)

lite = run("inspect", os.path.join(CONFIGS, "deepseek-v2-lite.json"))
check("lite ~15.7B", "15.71B" in lite.stdout, lite.stdout)

with tempfile.TemporaryDirectory() as tmp:
    tiny = os.path.join(tmp, "tiny")
    made = run("make-model", "--preset", "tiny", "--out", tiny, "--dtype", "bf16")
    check("make-model tiny", made.returncode == 0, made.stderr)
    out = run("inspect", tiny)
    check("inspect tiny", out.returncode == 0 and "all match the config" in out.stdout,
          out.stdout + out.stderr)
    check("inspect tiny bf16", re.search(r"BF16 x\d+", out.stdout) is not None, out.stdout)
    check_generate(tiny, tmp)  # before the checkpoint is truncated below

    # A custom config through --config: no q_lora, tied embeddings, greedy routing.
    with open(os.path.join(tiny, "config.json")) as f:
        custom = json.load(f)
    custom.update({"q_lora_rank": None, "tie_word_embeddings": True, "topk_method": "greedy",
                   "n_group": 1, "topk_group": 1, "num_hidden_layers": 2})
    custom_path = os.path.join(tmp, "custom.json")
    with open(custom_path, "w") as f:
        json.dump(custom, f)
    custom_dir = os.path.join(tmp, "custom")
    made = run("make-model", "--config", custom_path, "--out", custom_dir, "--max-shard-mb", "0.1")
    check("make-model --config", made.returncode == 0, made.stderr)
    out = run("inspect", custom_dir)
    check("inspect custom sharded", out.returncode == 0 and "files," in out.stdout
          and "q_lora_rank null" in out.stdout, out.stdout + out.stderr)
    check("custom total", grouped(parameter_count(custom)) in out.stdout, out.stdout)

    # Bad input: clear errors, non-zero exit, nothing crashes.
    weights = os.path.join(tiny, "model.safetensors")
    with open(weights, "r+b") as f:
        f.truncate(os.path.getsize(weights) // 2)
    out = run("inspect", tiny)
    check("truncated checkpoint", out.returncode == 1 and "model.safetensors" in out.stderr,
          (out.returncode, out.stderr))

    mismatch = dict(custom, hidden_size=custom["hidden_size"] * 2)
    with open(os.path.join(custom_dir, "config.json"), "w") as f:
        json.dump(mismatch, f)
    out = run("inspect", custom_dir)
    check("shape mismatch", out.returncode == 1 and "shape" in out.stderr, (out.returncode, out.stderr))

    with open(os.path.join(tmp, "bad.json"), "w") as f:
        f.write('{"model_type": "deepseek_v2", "num_hidden_layers": "sixty"}')
    out = run("inspect", os.path.join(tmp, "bad.json"))
    check("bad field", out.returncode == 1 and "num_hidden_layers" in out.stderr, out.stderr)

    out = run("make-model", "--preset", "huge", "--out", os.path.join(tmp, "x"))
    check("unknown preset", out.returncode != 0 and "huge" in (out.stderr + out.stdout), out.stderr)
    out = run("make-model", "--out", os.path.join(tmp, "x"))
    check("preset or config required", out.returncode != 0 and "--preset" in out.stderr, out.stderr)
    small_vocab = dict(custom, vocab_size=10, bos_token_id=1, eos_token_id=2)
    with open(custom_path, "w") as f:
        json.dump(small_vocab, f)
    out = run("make-model", "--config", custom_path, "--out", os.path.join(tmp, "x"))
    check("vocab too small", out.returncode == 1 and "vocab_size" in out.stderr, out.stderr)

print(f"{results['passed']} passed, {results['failed']} failed")
sys.exit(1 if results["failed"] else 0)
