"""Log-probabilities through the real router (kubemoe-router on a tiny random model, every expert
in-process), driven by the official `openai` client and by lm-evaluation-harness's exact request.

Checks, against a second source wherever one exists:
  * completions with logprobs=3: each top_logprobs dict has <= 3 + 1 entries and holds the token
    itself; at temperature 0 the token's logprob is the dict's maximum; text_offset adds up;
  * lm-eval's loglikelihood payload (prompt as [[ids]], max_tokens 1, logprobs 1, echo): prompt
    tokens first (the first with null logprob), one generated token last, and lm-eval's own
    parsing of the answer works; echo with max_tokens 0 gives the same prompt logprobs and nothing
    generated;
  * teacher forcing: echoing prompt + the greedily generated tokens (ids via vLLM's
    return_tokens_as_token_ids) reproduces the generated tokens' logprobs to 1e-4, so the prompt
    logprobs summed by lm-eval are the ones the model gives when it generates;
  * streaming completions and chat: the chunks' logprobs joined equal the whole response's;
  * chat logprobs / top_logprobs: OpenAI's shape, bytes, top_logprobs sorted, greedy = top 1;
  * 400s naming the field for invalid logprobs, top_logprobs, echo and max_tokens.

Environment (set by ctest): KUBEMOE_BIN, the kubemoe CLI, with kubemoe-router beside it.
Prints 'N passed, M failed'.
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import openai

from checks import check, free_port, results

KUBEMOE = os.environ["KUBEMOE_BIN"]
ROUTER = os.path.join(os.path.dirname(os.path.abspath(KUBEMOE)), "kubemoe-router")
MODEL = "tiny"
TOLERANCE = 1e-4




def post(base, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def start_router(model_dir, port):
    proc = subprocess.Popen(
        [ROUTER, "--model-dir", model_dir, "--served-model-name", MODEL, "--http-address",
         "127.0.0.1", "--http-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"router did not become ready: {proc.stdout.read()}")


def lm_eval_parse(choice, ctxlen):
    """lm-evaluation-harness's local-completions parse_logprobs, for one choice."""
    logprobs = sum(choice["logprobs"]["token_logprobs"][ctxlen:-1])
    tokens_logprobs = choice["logprobs"]["token_logprobs"][ctxlen:-1]
    top_logprobs = choice["logprobs"]["top_logprobs"][ctxlen:-1]
    is_greedy = True
    for tok, top in zip(tokens_logprobs, top_logprobs):
        if tok != max(top.values()):
            is_greedy = False
            break
    return logprobs, is_greedy


def ids_of(tokens):
    return [int(t.split(":", 1)[1]) for t in tokens]


def test_completion_logprobs(client):
    r = client.completions.create(model=MODEL, prompt="The quick brown fox", max_tokens=6,
                                  temperature=0, logprobs=3)
    c = r.choices[0]
    lp = c.logprobs
    n = len(lp.tokens)
    expect = r.usage.completion_tokens + (1 if c.finish_reason == "stop" else 0)  # + EOS
    check("completion logprobs lengths", n == expect and len(lp.token_logprobs) == n
          and len(lp.top_logprobs) == n and len(lp.text_offset) == n, lp)
    for i in range(n):
        top = lp.top_logprobs[i]
        check(f"top_logprobs[{i}] has <= 3 + the sampled token", 1 <= len(top) <= 4, top)
        check(f"top_logprobs[{i}] holds the token", top.get(lp.tokens[i]) == lp.token_logprobs[i],
              (lp.tokens[i], lp.token_logprobs[i], top))
        check(f"greedy token {i} is the most likely",
              lp.token_logprobs[i] == max(top.values()), (lp.token_logprobs[i], top))
        check(f"logprob {i} is a log-probability", lp.token_logprobs[i] <= 0
              and sum(math.exp(v) for v in top.values()) <= 1 + 1e-6, top)
    offsets = [0]
    for t in lp.tokens[:-1]:
        offsets.append(offsets[-1] + len(t))
    check("text_offset adds up the token strings", lp.text_offset == offsets, lp.text_offset)
    return r


def test_lm_eval(base, prompt_ids):
    # Exactly what lm-eval's local-completions sends for loglikelihood.
    payload = {"model": MODEL, "prompt": [prompt_ids], "temperature": 0, "max_tokens": 1,
               "logprobs": 1, "seed": 1234, "echo": True}
    status, body = post(base, "/v1/completions", payload)
    check("lm-eval request answered", status == 200, body)
    if status != 200:
        return None
    choice = body["choices"][0]
    lp = choice["logprobs"]
    n = len(prompt_ids)
    check("echo: prompt tokens + one generated", len(lp["tokens"]) == n + 1
          and len(lp["token_logprobs"]) == n + 1, lp)
    check("echo: the first prompt token has no logprob",
          lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None, lp)
    check("echo: every later position has logprobs",
          all(isinstance(x, float) for x in lp["token_logprobs"][1:])
          and all(isinstance(t, dict) and 1 <= len(t) <= 2 for t in lp["top_logprobs"][1:]), lp)
    ctxlen = n // 2  # lm-eval: context = prompt[:ctxlen], continuation = the rest
    total, is_greedy = lm_eval_parse(choice, ctxlen)
    check("lm-eval parses the answer", isinstance(total, float) and isinstance(is_greedy, bool),
          (total, is_greedy))
    check("echo text starts with the prompt", choice["text"].startswith("".join(lp["tokens"][:n])),
          (choice["text"], lp["tokens"][:n]))

    payload["max_tokens"] = 0
    status, body0 = post(base, "/v1/completions", payload)
    check("echo with max_tokens 0", status == 200, body0)
    if status == 200:
        c0 = body0["choices"][0]
        lp0 = c0["logprobs"]
        check("max_tokens 0: only the prompt", len(lp0["tokens"]) == n
              and c0["finish_reason"] == "length" and body0["usage"]["completion_tokens"] == 0
              and lp0["tokens"] == lp["tokens"][:n], body0)
        check("max_tokens 0: the same prompt logprobs",
              all(abs(a - b) <= TOLERANCE for a, b in
                  zip(lp0["token_logprobs"][1:], lp["token_logprobs"][1:n])),
              (lp0["token_logprobs"], lp["token_logprobs"]))
    return lp


def test_teacher_forcing(base, prompt_ids):
    # Greedy generation with token ids as token strings, then the same tokens echoed as a prompt.
    status, gen = post(base, "/v1/completions", {
        "model": MODEL, "prompt": [prompt_ids], "temperature": 0, "max_tokens": 8, "logprobs": 5,
        "ignore_eos": True, "return_tokens_as_token_ids": True})
    check("greedy generation", status == 200, gen)
    if status != 200:
        return
    glp = gen["choices"][0]["logprobs"]
    generated = ids_of(glp["tokens"])
    check("greedy generation: 8 tokens", len(generated) == 8, glp["tokens"])
    for i, top in enumerate(glp["top_logprobs"]):
        best = max(top, key=top.get)
        check(f"teacher forcing: greedy token {i} is the argmax", best == glp["tokens"][i]
              and top[best] == glp["token_logprobs"][i], (glp["tokens"][i], top))
    status, echo = post(base, "/v1/completions", {
        "model": MODEL, "prompt": [prompt_ids + generated], "temperature": 0, "max_tokens": 0,
        "logprobs": 5, "echo": True, "return_tokens_as_token_ids": True})
    check("echo of prompt + generated", status == 200, echo)
    if status != 200:
        return
    elp = echo["choices"][0]["logprobs"]
    n = len(prompt_ids)
    check("echo tokens are the ids sent", ids_of(elp["tokens"]) == prompt_ids + generated,
          elp["tokens"])
    forced = elp["token_logprobs"][n:]
    worst = max((abs(a - b) for a, b in zip(forced, glp["token_logprobs"])), default=1.0)
    print(f"teacher forcing: max |difference| {worst:.1e} over {len(forced)} tokens", flush=True)
    check("echo reproduces the generated tokens' logprobs", len(forced) == len(generated)
          and worst <= TOLERANCE, (worst, forced, glp["token_logprobs"]))
    check("echo's summed logprobs equal generation's",
          abs(sum(forced) - sum(glp["token_logprobs"])) <= TOLERANCE * len(forced),
          (sum(forced), sum(glp["token_logprobs"])))


def test_streaming(client, whole):
    stream = client.completions.create(model=MODEL, prompt="The quick brown fox", max_tokens=6,
                                       temperature=0, logprobs=3, stream=True)
    tokens, values, tops, offsets, text = [], [], [], [], ""
    for chunk in stream:
        if not chunk.choices:
            continue
        c = chunk.choices[0]
        text += c.text
        if c.logprobs is not None:
            tokens += c.logprobs.tokens
            values += c.logprobs.token_logprobs
            tops += c.logprobs.top_logprobs
            offsets += c.logprobs.text_offset
    lp = whole.choices[0].logprobs
    check("streamed text equals the whole response's", text == whole.choices[0].text,
          (text, whole.choices[0].text))
    check("streamed logprobs equal the whole response's", tokens == lp.tokens
          and offsets == lp.text_offset and tops == lp.top_logprobs
          and all(abs(a - b) <= TOLERANCE for a, b in zip(values, lp.token_logprobs)),
          (tokens, values, lp.tokens, lp.token_logprobs))

    stream = client.completions.create(model=MODEL, prompt="Hello there", max_tokens=2,
                                       temperature=0, logprobs=1, echo=True, stream=True)
    chunks = [c for c in stream if c.choices]
    first = chunks[0].choices[0] if chunks else None
    check("streamed echo: the prompt first", first is not None and first.text == "Hello there"
          and first.logprobs.token_logprobs[0] is None and len(first.logprobs.tokens) >= 2,
          first)


def test_chat(client):
    messages = [{"role": "user", "content": "Say something"}]
    r = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=5,
                                       temperature=0, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    check("chat: one entry per token", len(content) == r.usage.completion_tokens, content)
    for i, e in enumerate(content):
        top = e.top_logprobs
        check(f"chat entry {i} shape", isinstance(e.token, str) and isinstance(e.bytes, list)
              and len(top) == 3 and all(isinstance(t.bytes, list) for t in top), e)
        check(f"chat entry {i}: top sorted, greedy = top 1",
              [t.logprob for t in top] == sorted((t.logprob for t in top), reverse=True)
              and top[0].logprob == e.logprob and top[0].token == e.token, e)
    joined = b"".join(bytes(e.bytes) for e in content).decode("utf-8", errors="replace")
    check("chat: the tokens' bytes give the message", joined == r.choices[0].message.content
          or "<｜" in joined, (joined, r.choices[0].message.content))

    r0 = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=3,
                                        temperature=0, logprobs=True)
    check("chat: logprobs without top_logprobs", all(e.top_logprobs == [] for e in
                                                     r0.choices[0].logprobs.content), r0)
    r1 = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=3,
                                        temperature=0)
    check("chat: no logprobs unless asked", r1.choices[0].logprobs is None, r1)

    stream = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=5,
                                            temperature=0, logprobs=True, top_logprobs=3,
                                            stream=True)
    streamed = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].logprobs is not None:
            streamed += chunk.choices[0].logprobs.content
    check("chat streaming: the chunks' logprobs equal the whole response's",
          [e.token for e in streamed] == [e.token for e in content]
          and all(abs(a.logprob - b.logprob) <= TOLERANCE for a, b in zip(streamed, content)),
          (streamed, content))


def expect_400(name, param, fn):
    try:
        fn()
    except openai.APIStatusError as e:
        check(name, e.status_code == 400 and isinstance(e.body, dict)
              and e.body.get("param") == param, f"status {e.status_code}, body {e.body}")
        return
    check(name, False, "no error")


def test_errors(client):
    chat = [{"role": "user", "content": "x"}]
    expect_400("logprobs > 20", "logprobs", lambda: client.completions.create(
        model=MODEL, prompt="x", max_tokens=1, logprobs=21))
    expect_400("logprobs < 0", "logprobs", lambda: client.completions.create(
        model=MODEL, prompt="x", max_tokens=1, logprobs=-1))
    expect_400("logprobs of the wrong type", "logprobs", lambda: client.completions.create(
        model=MODEL, prompt="x", max_tokens=1, extra_body={"logprobs": "3"}))
    expect_400("max_tokens 0 without echo", "max_tokens", lambda: client.completions.create(
        model=MODEL, prompt="x", max_tokens=0, logprobs=1))
    expect_400("echo of the wrong type", "echo", lambda: client.completions.create(
        model=MODEL, prompt="x", max_tokens=1, extra_body={"echo": "yes"}))
    expect_400("chat top_logprobs without logprobs", "top_logprobs",
               lambda: client.chat.completions.create(model=MODEL, messages=chat, max_tokens=1,
                                                      top_logprobs=2))
    expect_400("chat top_logprobs > 20", "top_logprobs", lambda: client.chat.completions.create(
        model=MODEL, messages=chat, max_tokens=1, logprobs=True, top_logprobs=21))
    expect_400("chat logprobs of the wrong type", "logprobs",
               lambda: client.chat.completions.create(model=MODEL, messages=chat, max_tokens=1,
                                                      extra_body={"logprobs": 3}))
    expect_400("chat echo", "echo", lambda: client.chat.completions.create(
        model=MODEL, messages=chat, max_tokens=1, extra_body={"echo": True}))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, MODEL)
        made = subprocess.run([KUBEMOE, "make-model", "--preset", "tiny", "--out", model_dir,
                               "--seed", "3"], capture_output=True, text=True, timeout=120)
        check("make-model", made.returncode == 0, made.stderr)
        if made.returncode != 0:
            print(f"{results['passed']} passed, {results['failed']} failed")
            return 1
        port = free_port()
        router = start_router(model_dir, port)
        try:
            base = f"http://127.0.0.1:{port}"
            client = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0,
                                   timeout=120)
            whole = test_completion_logprobs(client)
            prompt_ids = [5, 17, 230, 41, 99, 300, 12, 64]
            test_lm_eval(base, prompt_ids)
            test_teacher_forcing(base, prompt_ids)
            test_streaming(client, whole)
            test_chat(client)
            test_errors(client)
        finally:
            router.terminate()
            try:
                router.wait(timeout=20)
            except subprocess.TimeoutExpired:
                router.kill()
                router.wait()
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
