"""Drives the router's OpenAI HTTP layer with the official `openai` Python client and with curl.

By default it starts tests/tools/openai_fake_server (the real HTTP layer over a fake generation
service with a per-token delay, a scripted reply, and prompt words that make it fail) on
127.0.0.1 and checks: /v1/models, completions (text and token-id prompts), chat, usage,
max_tokens, stop strings (also split across tokens), streaming (the first chunk arrives while
generation is still going, chat's role chunk, usage chunk, multi-byte characters never split),
errors as APIStatusError with the right status code (400, 404, 413, 429, 503), an error in the
middle of a stream (an error event, raised by the client), a client that disconnects in the
middle of a stream (the service sees the request cancelled), logprobs and echo (shapes; the fake
makes their values up), curl, and /metrics.

Environment:
  KUBEMOE_OPENAI_FAKE_SERVER_BIN  the fake server (set by ctest), else
                                  $KUBEMOE_BINARY_DIR/tests/openai_fake_server
  KUBEMOE_OPENAI_BASE_URL         test a running server instead (e.g. http://127.0.0.1:8000, the
  KUBEMOE_OPENAI_MODEL            real router), serving this model; fake-only cases are skipped
Prints 'N passed, M failed'.
"""

import json
import os
import select
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import openai
from prometheus_client.parser import text_string_to_metric_families
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER_JSON = os.path.join(HERE, "..", "data", "tokenizer", "tokenizer.json")
FAKE_MODEL = "kubemoe-fake"
# The fake's reply: multi-byte characters (split across tokens by this small vocabulary) and a
# stop-string candidate.
FAKE_REPLY = "Hello! The answer is 42. Ünïcødé ✓ 😀 ok. A STOP marker, then more words follow."
TOKEN_DELAY_MS = 25
MAX_CONTEXT = 256
BOS = "<｜begin▁of▁sentence｜>"

results = {"passed": 0, "failed": 0, "skipped": 0}


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    if not ok:
        print(f"FAIL {name}: {detail}")


def skip(name):
    results["skipped"] += 1
    print(f"skip {name} (needs the fake server)")


def fake_binary():
    path = os.environ.get("KUBEMOE_OPENAI_FAKE_SERVER_BIN")
    if not path:
        path = os.path.join(os.environ.get("KUBEMOE_BINARY_DIR", "build"), "tests", "openai_fake_server")
    return path


def start_fake():
    """Starts the fake server on a free loopback port; returns (process, base_url)."""
    proc = subprocess.Popen(
        [fake_binary(), "--host", "127.0.0.1", "--port", "0", "--model", FAKE_MODEL,
         "--token-delay-ms", str(TOKEN_DELAY_MS), "--max-context", str(MAX_CONTEXT),
         "--reply", FAKE_REPLY, "--tokenizer", TOKENIZER_JSON],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("port "):
        proc.kill()
        raise RuntimeError(f"fake server did not start: {line!r} {proc.stderr.read()}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


def http_get(base, path):
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return r.status, r.read().decode()


def curl(*args):
    out = subprocess.run(["curl", "-sS", "--max-time", "30", "-w", "\n%{http_code}", *args],
                         capture_output=True, text=True, timeout=60)
    body, _, code = out.stdout.rpartition("\n")
    return int(code or 0), body


def metric(base, name, labels):
    _, text = http_get(base, "/metrics")
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def expect_status(name, status, fn, param=None):
    try:
        fn()
    except openai.APIStatusError as e:
        ok = e.status_code == status and isinstance(e.body, dict) and "message" in e.body
        if ok and param is not None:
            ok = e.body.get("param") == param
        check(name, ok, f"status {e.status_code}, body {e.body}")
        return
    except Exception as e:  # noqa: BLE001 - any other failure is a test failure
        check(name, False, f"{type(e).__name__}: {e}")
        return
    check(name, False, f"no error, expected HTTP {status}")


def test_basics(client, model, fake):
    models = client.models.list()
    check("models list", [m.id for m in models.data] == [model], models)

    r = client.completions.create(model=model, prompt="Say hi", max_tokens=5, temperature=0)
    c = r.choices[0]
    check("completion shape", r.object == "text_completion" and r.id.startswith("cmpl-")
          and c.index == 0 and c.finish_reason in ("stop", "length"), r)
    check("completion usage", r.usage.completion_tokens <= 5 and r.usage.prompt_tokens > 0
          and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, r.usage)
    if fake:
        check("completion text", FAKE_REPLY.startswith(c.text) and c.finish_reason == "length"
              and r.usage.completion_tokens == 5, c)
        tok = Tokenizer.from_file(TOKENIZER_JSON)
        check("completion prompt tokens (BOS added)",
              r.usage.prompt_tokens == len(tok.encode("Say hi", add_special_tokens=True).ids), r.usage)

    r = client.completions.create(model=model, prompt=[5, 6, 7], max_tokens=2, temperature=0)
    check("token-id prompt", r.usage.prompt_tokens == 3, r.usage)

    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=6, temperature=0)
    m = r.choices[0].message
    check("chat shape", r.object == "chat.completion" and r.id.startswith("chatcmpl-")
          and m.role == "assistant" and isinstance(m.content, str), r)
    if fake:
        tok = Tokenizer.from_file(TOKENIZER_JSON)
        want = len(tok.encode(BOS + "User: hi\n\nAssistant:", add_special_tokens=False).ids)
        check("chat prompt from the default template", r.usage.prompt_tokens == want, (r.usage, want))
        r = client.chat.completions.create(
            model=model, max_tokens=60, temperature=0,
            messages=[{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": [{"type": "text", "text": "hi"}]}])
        check("chat whole reply", r.choices[0].message.content == FAKE_REPLY
              and r.choices[0].finish_reason == "stop", r.choices[0])

    r = client.completions.create(model=model, prompt="Count", max_tokens=3, temperature=0)
    check("max_tokens", r.usage.completion_tokens <= 3 and
          (r.choices[0].finish_reason != "length" or r.usage.completion_tokens == 3), r)


def test_stop(client, model, fake):
    full = client.completions.create(model=model, prompt="Tell me", max_tokens=40, temperature=0)
    text = full.choices[0].text
    if len(text) < 6:
        skip("stop strings (reply too short to pick a stop string from)")
        return
    stop = text[len(text) // 2: len(text) // 2 + 3]
    want = text[: text.index(stop)]
    r = client.completions.create(model=model, prompt="Tell me", max_tokens=40, temperature=0, stop=[stop])
    check("stop string", r.choices[0].text == want and r.choices[0].finish_reason == "stop",
          (stop, r.choices[0]))
    chunks = client.completions.create(model=model, prompt="Tell me", max_tokens=40, temperature=0,
                                       stop=stop, stream=True)
    streamed = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    check("stop string, streamed", streamed == want, (stop, streamed, want))
    if fake:
        # "STOP marker" spans several tokens; no part of it may be sent.
        r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}],
                                           stop=["STOP marker", "zzz"], stream=True, max_tokens=60)
        streamed = "".join(ch.choices[0].delta.content or "" for ch in r if ch.choices)
        check("multi-token stop string, streamed", streamed == FAKE_REPLY[: FAKE_REPLY.index("STOP marker")],
              streamed)


def test_streaming(client, model, fake):
    t0 = time.monotonic()
    arrivals, texts, finish = [], [], None
    stream = client.completions.create(model=model, prompt="Stream please", max_tokens=30,
                                       temperature=0, stream=True)
    for ch in stream:
        arrivals.append(time.monotonic())
        if ch.choices:
            texts.append(ch.choices[0].text)
            finish = ch.choices[0].finish_reason or finish
    whole = client.completions.create(model=model, prompt="Stream please", max_tokens=30, temperature=0)
    check("streamed text equals the whole response", "".join(texts) == whole.choices[0].text,
          ("".join(texts), whole.choices[0].text))
    check("stream finish_reason", finish == whole.choices[0].finish_reason, (finish, whole.choices[0]))
    check("stream has several chunks", len(arrivals) > 2, arrivals)
    if fake:
        check("no replacement characters", "\ufffd" not in "".join(texts), texts)
        # Generation of 30 tokens takes 30 token delays; the first chunk must come long before
        # the last one (compared within this run, not against a fixed time).
        first, last = arrivals[0] - t0, arrivals[-1] - t0
        check("first chunk arrives before generation ends", first < 0.5 * last, (first, last))
        check("streamed multi-byte text intact", "".join(texts) == FAKE_REPLY[: len("".join(texts))]
              and FAKE_REPLY.startswith("".join(texts)), texts)

    chunks = list(client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=8, temperature=0,
        stream=True, stream_options={"include_usage": True}))
    check("chat stream: first chunk carries the role", chunks[0].choices[0].delta.role == "assistant",
          chunks[0])
    check("chat stream objects", all(c.object == "chat.completion.chunk" for c in chunks), chunks)
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    check("chat stream: one final chunk", len(finals) == 1 and finals[0] in ("stop", "length"), finals)
    last = chunks[-1]
    check("chat stream: usage chunk last", last.choices == [] and last.usage is not None
          and last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens, last)


def test_errors(client, model, fake):
    expect_status("400 wrong type", 400, lambda: client.completions.create(
        model=model, prompt="x", extra_body={"temperature": "hot"}), param="temperature")
    expect_status("400 out of range", 400, lambda: client.completions.create(
        model=model, prompt="x", temperature=5), param="temperature")
    expect_status("400 n > 1", 400, lambda: client.completions.create(model=model, prompt="x", n=2),
                  param="n")
    expect_status("400 empty messages", 400, lambda: client.chat.completions.create(
        model=model, messages=[]), param="messages")
    expect_status("400 bad role", 400, lambda: client.chat.completions.create(
        model=model, messages=[{"role": "wizard", "content": "x"}]))
    expect_status("400 stream_options without stream", 400, lambda: client.completions.create(
        model=model, prompt="x", stream_options={"include_usage": True}))
    expect_status("400 unsupported feature", 400, lambda: client.completions.create(
        model=model, prompt="x", presence_penalty=1.0), param="presence_penalty")
    expect_status("404 unknown model", 404, lambda: client.completions.create(model="no-such-model", prompt="x"),
                  param="model")
    expect_status("413 longer than the context", 413, lambda: client.completions.create(
        model=model, prompt="x", max_tokens=10_000_000))
    if not fake:
        skip("429 / 503 / failures injected into the service")
        return
    expect_status("413 prompt alone too long", 413, lambda: client.completions.create(
        model=model, prompt=[5] * (MAX_CONTEXT + 1), max_tokens=1))
    expect_status("429 queue full", 429, lambda: client.completions.create(model=model, prompt="KM_QUEUE_FULL"))
    expect_status("503 not ready", 503, lambda: client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "KM_NOT_READY"}]))
    expect_status("503 failure while generating", 503, lambda: client.completions.create(
        model=model, prompt="KM_FAIL_AFTER_3"))
    expect_status("429 while streaming is asked", 429, lambda: client.completions.create(
        model=model, prompt="KM_QUEUE_FULL", stream=True))

    received = []
    try:
        for ch in client.completions.create(model=model, prompt="KM_FAIL_AFTER_3", stream=True):
            received.append(ch.choices[0].text)
        check("error mid-stream raises", False, f"stream ended normally after {received}")
    except openai.APIError as e:
        check("error mid-stream raises", len(received) == 3 and "expert shard" in str(e.message)
              and not isinstance(e, openai.APIConnectionError), (received, e))


def test_disconnect(client, model, base, fake):
    aborts = metric(base, "kubemoe_router_request_success_total", {"finished_reason": "abort"})
    before = json.loads(http_get(base, "/debug/cancelled")[1]) if fake else None
    stream = client.completions.create(model=model, prompt="KM_ENDLESS tell a long story",
                                       max_tokens=200, temperature=0, stream=True)
    got = 0
    for _ in stream:
        got += 1
        if got == 3:
            break
    stream.close()
    deadline = time.monotonic() + 20
    aborted = False
    while time.monotonic() < deadline and not aborted:
        time.sleep(0.1)
        aborted = metric(base, "kubemoe_router_request_success_total", {"finished_reason": "abort"}) > aborts
    check("disconnect counted as abort", aborted)
    if fake:
        after = json.loads(http_get(base, "/debug/cancelled")[1])
        check("service saw the request cancelled", after["cancelled"] == before["cancelled"] + 1
              and after["active"] == 0, (before, after))


def test_curl(base, model):
    code, body = curl(base + "/v1/completions", "-H", "Content-Type: application/json",
                      "-d", json.dumps({"model": model, "prompt": "hi", "max_tokens": 4}))
    check("curl completion", code == 200 and json.loads(body)["choices"][0]["finish_reason"], (code, body))
    code, body = curl("-N", base + "/v1/chat/completions", "-d",
                      json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}],
                                  "max_tokens": 4, "stream": True}))
    events = [e for e in body.split("\n\n") if e.strip()]
    check("curl stream events", code == 200 and all(e.startswith("data: ") for e in events)
          and events[-1] == "data: [DONE]"
          and json.loads(events[0][6:])["choices"][0]["delta"]["role"] == "assistant", body)
    code, body = curl(base + "/v1/completions", "-d", "{not json")
    check("curl malformed JSON", code == 400 and "error" in json.loads(body), (code, body))
    code, body = curl(base + "/v1/completions", "-d", "[1, 2]")
    check("curl body not an object", code == 400 and json.loads(body)["error"]["type"] == "invalid_request_error",
          (code, body))
    code, body = curl(base + "/v1/nothing")
    check("curl unknown path", code == 404 and "error" in json.loads(body), (code, body))
    code, body = curl("-X", "POST", base + "/v1/models")
    check("curl wrong method", code == 405, (code, body))


def test_metrics(base):
    ok_requests = metric(base, "kubemoe_router_requests_total", {"endpoint": "/v1/completions", "code": "200"})
    bad_requests = metric(base, "kubemoe_router_requests_total", {"endpoint": "/v1/completions", "code": "400"})
    ttft = metric(base, "kubemoe_router_time_to_first_token_seconds_count", {})
    tokens = metric(base, "kubemoe_router_generation_tokens_total", {})
    check("metrics count requests", ok_requests > 0 and bad_requests > 0, (ok_requests, bad_requests))
    check("metrics observe tokens", ttft > 0 and tokens > 0, (ttft, tokens))


def test_logprobs(client, model, fake):
    """Logprobs through the HTTP layer (their values against the model: openai_logprobs_test.py)."""
    r = client.completions.create(model=model, prompt="Say hi", max_tokens=4, temperature=0,
                                  logprobs=2, echo=True)
    c, lp = r.choices[0], r.choices[0].logprobs
    n = r.usage.prompt_tokens + r.usage.completion_tokens
    check("logprobs: echo lists prompt and completion tokens", len(lp.tokens) == n
          and len(lp.token_logprobs) == n and len(lp.top_logprobs) == n
          and len(lp.text_offset) == n and c.text.startswith("Say hi"), lp)
    check("logprobs: the first prompt token has none",
          lp.token_logprobs[0] is None and lp.top_logprobs[0] is None, lp)
    check("logprobs: top dicts hold the token and at most 2 more",
          all(t is not None and lp.tokens[i] in t and len(t) <= 3
              for i, t in enumerate(lp.top_logprobs) if i > 0), lp.top_logprobs)
    if fake:
        check("logprobs: the fake's values", lp.token_logprobs[1] == -0.5, lp.token_logprobs)
    r = client.completions.create(model=model, prompt=[5, 6, 7], max_tokens=0, echo=True,
                                  logprobs=0)
    check("logprobs: echo with max_tokens 0", len(r.choices[0].logprobs.tokens) == 3
          and r.usage.completion_tokens == 0 and r.choices[0].finish_reason == "length", r)
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                            max_tokens=4, temperature=0, logprobs=True,
                                            top_logprobs=1, stream=True)
    entries, text = [], ""
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            if chunk.choices[0].logprobs is not None:
                entries += chunk.choices[0].logprobs.content
    check("logprobs: streamed chat entries, bytes joined give the text",
          len(entries) == 4 and all(len(e.top_logprobs) == 1 for e in entries)
          and b"".join(bytes(e.bytes) for e in entries).decode("utf-8", "replace") == text,
          (entries, text))
    expect_status("logprobs > 20", 400, lambda: client.completions.create(
        model=model, prompt="x", max_tokens=1, logprobs=21), param="logprobs")


def run(base, model, fake):
    client = openai.OpenAI(base_url=base + "/v1", api_key="not-needed", max_retries=0, timeout=60)
    for fn in (lambda: test_basics(client, model, fake), lambda: test_stop(client, model, fake),
               lambda: test_streaming(client, model, fake), lambda: test_errors(client, model, fake),
               lambda: test_disconnect(client, model, base, fake), lambda: test_curl(base, model),
               lambda: test_logprobs(client, model, fake), lambda: test_metrics(base)):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report and go on with the other groups
            check("unexpected exception", False, f"{type(e).__name__}: {e}")


def main():
    base = os.environ.get("KUBEMOE_OPENAI_BASE_URL")
    if base:
        run(base.rstrip("/"), os.environ.get("KUBEMOE_OPENAI_MODEL", ""), fake=False)
    else:
        proc, base = start_fake()
        # Drain the server's stderr so it can never block on a full pipe.
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        try:
            run(base, FAKE_MODEL, fake=True)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        check("fake server exits cleanly", proc.returncode == 0, proc.returncode)
    print(f"{results['passed']} passed, {results['failed']} failed, {results['skipped']} skipped")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
