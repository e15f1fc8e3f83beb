"""r1-distill serve: a real server on 127.0.0.1 over a tiny GGUF, driven by the official openai client."""

import asyncio
import threading
import time

import httpx
import pytest

from support import RunningServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _reasoning(message):
    return (message.model_extra or {}).get("reasoning_content")


def test_non_streaming_returns_reasoning_and_answer_apart(client):
    resp = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "What is 2+2?"}],
                                          max_tokens=24, seed=3, extra_body={"thinking_budget_tokens": 8})
    choice = resp.choices[0]
    reasoning, content = _reasoning(choice.message), choice.message.content
    assert reasoning and content, (reasoning, content)
    assert "</think>" not in reasoning and "</think>" not in content and "<think>" not in reasoning
    assert resp.usage.completion_tokens_details.reasoning_tokens == 8
    assert resp.usage.prompt_tokens > 0 and resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert choice.finish_reason in ("stop", "length")


def test_thinking_cut_by_the_token_limit_is_all_reasoning(client):
    resp = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=10, seed=1)
    choice = resp.choices[0]
    assert choice.finish_reason == "length" and choice.message.content == "" and _reasoning(choice.message)
    assert resp.usage.completion_tokens_details.reasoning_tokens == 10


def test_raw_reasoning_format_returns_the_text_as_is(client):
    resp = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=16,
                                          seed=2, extra_body={"thinking_budget_tokens": 4, "reasoning_format": "none"})
    assert "</think>" in resp.choices[0].message.content and _reasoning(resp.choices[0].message) is None


def test_stream_chunks_have_role_first_one_id_finish_and_usage(client):
    stream = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Count to 3."}], max_tokens=20, seed=5, stream=True,
        stream_options={"include_usage": True}, extra_body={"thinking_budget_tokens": 6})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    kinds = []
    for c in chunks:
        if c.choices and (c.choices[0].delta.model_extra or {}).get("reasoning_content"):
            kinds.append("r")
        elif c.choices and c.choices[0].delta.content:
            kinds.append("a")
    assert "r" in kinds and "a" in kinds and kinds == sorted(kinds, reverse=True), kinds  # reasoning, then answer
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens_details.reasoning_tokens == 6


def test_reasoning_content_sent_back_is_dropped_from_the_prompt(client):
    thought = "two and two make four, " * 8

    def prompt_tokens(assistant: dict) -> int:
        resp = client.chat.completions.create(model="tiny", max_tokens=4, messages=[
            {"role": "user", "content": "2+2?"}, {"role": "assistant", **assistant}, {"role": "user", "content": "and 3+3?"}])
        assert resp.choices[0].finish_reason == "length"
        return resp.usage.prompt_tokens

    without = prompt_tokens({"content": "4"})
    assert prompt_tokens({"content": "4", "reasoning_content": thought}) == without  # accepted, and not in the prompt
    assert prompt_tokens({"content": thought + "4"}) > without + 20  # the count would show the thought, were it kept


def test_completions_and_models(server):
    r = httpx.post(server.url + "/v1/completions", json={"prompt": "Once upon", "max_tokens": 5, "temperature": 0}, timeout=60)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 5
    again = httpx.post(server.url + "/v1/completions", json={"prompt": "Once upon", "max_tokens": 5, "temperature": 0}, timeout=60)
    assert again.json()["choices"][0]["text"] == r.json()["choices"][0]["text"]  # greedy is deterministic
    models = httpx.get(server.url + "/v1/models").json()
    assert models["data"][0]["id"] == "tiny-qwen2-Q4_K_M"


def _metric(server, name):
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith(f"r1_distill_{name} "):
            return float(line.split()[-1])
    raise KeyError(name)


def test_sixteen_concurrent_streams_finish_and_decode_together(server):
    from openai import AsyncOpenAI

    calls_before = _metric(server, "decode_calls_total")
    tokens = 24

    async def one(i, client):
        stream = await client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": f"Q{i}"}],
                                                      max_tokens=tokens, seed=i, stream=True)
        finish = None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        return finish

    async def main():
        client = AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=120)
        return await asyncio.gather(*(one(i, client) for i in range(16)))

    finishes = asyncio.run(main())
    assert finishes == ["length"] * 16
    calls = _metric(server, "decode_calls_total") - calls_before
    assert calls < 16 * tokens / 2, f"{calls} decode calls for {16 * tokens} tokens: sequences were not batched"


def test_dropped_streams_free_their_slots(server):
    cancelled_before = _metric(server, "requests_cancelled_total")
    body = {"messages": [{"role": "user", "content": "go"}], "max_tokens": 900, "stream": True}
    with httpx.Client(timeout=60) as http:
        for _ in range(4):  # every slot
            with http.stream("POST", server.url + "/v1/chat/completions", json=body) as r:
                lines = r.iter_lines()
                for _ in range(3):
                    next(lines)
            # leaving the block closes the connection mid-stream
    deadline = time.time() + 20
    while time.time() < deadline and httpx.get(server.url + "/health").json()["slots_busy"] > 0:
        time.sleep(0.1)
    assert httpx.get(server.url + "/health").json()["slots_busy"] == 0
    assert _metric(server, "requests_cancelled_total") - cancelled_before == 4
    r = httpx.post(server.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
    assert r.status_code == 200


def test_thinking_budget_closes_thinking_then_the_model_answers(client):
    for budget in (1, 5, 12):
        resp = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Think briefly."}],
                                              max_tokens=budget + 10, seed=budget,
                                              extra_body={"thinking_budget_tokens": budget})
        assert resp.usage.completion_tokens_details.reasoning_tokens == budget
        assert resp.choices[0].message.content, "the model goes on to answer after the thinking closes"
    effort = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}], max_tokens=8,
                                            reasoning_effort="low")
    assert effort.usage.completion_tokens_details.reasoning_tokens == 8  # budget 1024 > 8: never closed


LONG = "word " * 3000
CHAT = "/v1/chat/completions"
OK_MSGS = [{"role": "user", "content": "hi"}]
MALFORMED = [
    (CHAT, b"not json"), (CHAT, b""), (CHAT, b"[1, 2]"), (CHAT, b"null"), (CHAT, b'"text"'), (CHAT, b"\xff\xfe\x00"),
    (CHAT, {}), (CHAT, {"messages": []}), (CHAT, {"messages": "hi"}), (CHAT, {"messages": [1]}),
    (CHAT, {"messages": [{"content": "hi"}]}), (CHAT, {"messages": [{"role": "wizard", "content": "hi"}]}),
    (CHAT, {"messages": [{"role": "user"}]}), (CHAT, {"messages": [{"role": "user", "content": 5}]}),
    (CHAT, {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
    (CHAT, {"messages": [{"role": "user", "content": [{"type": "text"}]}]}),
    (CHAT, {"messages": [{"role": "system", "content": "only a system turn"}]}),
    (CHAT, {"messages": [{"role": "user", "content": "hi", "reasoning_content": 5}]}),
    (CHAT, {"messages": OK_MSGS, "max_tokens": -1}), (CHAT, {"messages": OK_MSGS, "max_tokens": 0}),
    (CHAT, {"messages": OK_MSGS, "max_tokens": "10"}), (CHAT, {"messages": OK_MSGS, "max_tokens": 1.5}),
    (CHAT, {"messages": OK_MSGS, "max_tokens": 10**9}), (CHAT, {"messages": OK_MSGS, "max_tokens": True}),
    (CHAT, {"messages": OK_MSGS, "max_completion_tokens": -1}),
    (CHAT, {"messages": OK_MSGS, "temperature": -0.1}), (CHAT, {"messages": OK_MSGS, "temperature": 5}),
    (CHAT, {"messages": OK_MSGS, "temperature": "hot"}), (CHAT, {"messages": OK_MSGS, "top_p": 0}),
    (CHAT, {"messages": OK_MSGS, "top_p": 1.5}), (CHAT, {"messages": OK_MSGS, "top_k": -3}),
    (CHAT, {"messages": OK_MSGS, "stream": "yes"}), (CHAT, {"messages": OK_MSGS, "stream_options": "x"}),
    (CHAT, {"messages": OK_MSGS, "stream_options": {"include_usage": "yes"}}),
    (CHAT, {"messages": OK_MSGS, "n": 17}), (CHAT, {"messages": OK_MSGS, "n": 0}),
    (CHAT, {"messages": OK_MSGS, "stop": 5}), (CHAT, {"messages": OK_MSGS, "stop": [""]}),
    (CHAT, {"messages": OK_MSGS, "stop": ""}), (CHAT, {"messages": OK_MSGS, "stop": ["s"] * 17}),
    (CHAT, {"messages": OK_MSGS, "seed": "abc"}), (CHAT, {"messages": OK_MSGS, "reasoning_format": "xml"}),
    (CHAT, {"messages": OK_MSGS, "reasoning_effort": "extreme"}),
    (CHAT, {"messages": OK_MSGS, "thinking_budget_tokens": -5}),
    (CHAT, {"messages": OK_MSGS, "budget_forcing_waits": 100}),
    (CHAT, {"messages": OK_MSGS, "presence_penalty": 3}), (CHAT, {"messages": OK_MSGS, "frequency_penalty": "a"}),
    (CHAT, {"messages": OK_MSGS, "chat_template_kwargs": "x"}), (CHAT, {"messages": OK_MSGS, "model": 5}),
    (CHAT, {"messages": [{"role": "user", "content": LONG}]}),
    ("/v1/completions", {}), ("/v1/completions", {"prompt": ""}), ("/v1/completions", {"prompt": 5}),
    ("/v1/completions", {"prompt": ["a"] * 17}), ("/v1/completions", {"prompt": "hi", "max_tokens": -2}),
    ("/v1/completions", {"prompt": LONG}), ("/v1/nope", {"messages": OK_MSGS}),
    (CHAT, b"{" + b" " * (5 << 20) + b"}"),
]


def test_malformed_requests_get_4xx_in_openai_shape(server):
    assert len(MALFORMED) >= 50
    with httpx.Client(timeout=30) as http:
        for path, body in MALFORMED:
            if isinstance(body, bytes):
                r = http.post(server.url + path, content=body, headers={"content-type": "application/json"})
            else:
                r = http.post(server.url + path, json=body)
            assert 400 <= r.status_code < 500, (path, str(body)[:80], r.status_code, r.text[:200])
            err = r.json()["error"]
            assert err["message"] and err["type"], (path, body)
        r = http.get(server.url + CHAT)
        assert r.status_code == 405 and r.json()["error"]["message"]
        assert http.post(server.url + CHAT, json={"messages": [{"role": "user", "content": LONG}]}).json()["error"]["code"] == "context_length_exceeded"
        assert http.get(server.url + "/health").status_code == 200
        assert http.post(server.url + CHAT, json={"messages": OK_MSGS, "max_tokens": 2}).status_code == 200


def test_api_key_and_full_queue(tiny_gguf):
    srv = RunningServer(tiny_gguf, "--parallel", "1", "--max-queue", "1", "--api-key", "sekret", "--ctx", "2048")
    try:
        body = {"messages": OK_MSGS, "max_tokens": 2}
        r = httpx.post(srv.url + CHAT, json=body)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert httpx.post(srv.url + CHAT, json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        auth = {"Authorization": "Bearer sekret"}
        assert httpx.post(srv.url + CHAT, json=body, headers=auth).status_code == 200
        assert httpx.get(srv.url + "/health").status_code == 200  # health needs no key

        long_body = {"messages": OK_MSGS, "max_tokens": 1500, "stream": True}
        statuses, retry_after = [], []
        opened = []
        with httpx.Client(timeout=60, headers=auth) as http:
            for _ in range(3):  # one decoding, one queued, one refused
                cm = http.stream("POST", srv.url + CHAT, json=long_body)
                r = cm.__enter__()
                opened.append(cm)
                statuses.append(r.status_code)
                retry_after.append(r.headers.get("retry-after"))
                time.sleep(0.3)
            for cm in opened:
                cm.__exit__(None, None, None)
        assert statuses[:2] == [200, 200] and statuses[2] == 503 and retry_after[2] == "1"
    finally:
        srv.stop()


def test_health_is_503_while_loading():
    from fastapi.testclient import TestClient

    from r1_distill.serve import ServerConfig, create_app

    release = threading.Event()

    def slow_factory():
        release.wait(30)
        raise RuntimeError("no model here")

    app = create_app(ServerConfig(model="x.gguf"), engine_factory=slow_factory)
    with TestClient(app) as http:
        r = http.get("/health")
        assert r.status_code == 503 and r.json()["status"] == "loading"
        r = http.post(CHAT, json={"messages": OK_MSGS})
        assert r.status_code == 503 and r.json()["error"]["type"] == "server_error"
        release.set()
        time.sleep(0.2)
        assert http.get("/health").json()["status"] == "error"


def test_serve_cli_bad_model_exits_2(tmp_path):
    import subprocess
    import sys

    for model, message in [(tmp_path / "none.gguf", "does not exist"), (tmp_path, "is not a .gguf file")]:
        if model == tmp_path:
            model = tmp_path / "weights.bin"
            model.write_bytes(b"x")
        out = subprocess.run([sys.executable, "-m", "r1_distill", "serve", "--model", str(model)], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_budget_forcing_turns_an_early_close_into_wait(tiny_gguf, monkeypatch):
    """s1's budget forcing on the real engine: the sampler is made to pick `</think>` early (step 3,
    then step 8); with one "Wait" allowed, the first close becomes "Wait" and the second one stands."""
    import queue as q

    import r1_distill.llama.engine as E

    engine = E.BatchEngine(str(tiny_gguf), parallel=1, ctx=256)
    real, step = E.sample_token, {"n": 0}

    def sampler(logits, *args, **kwargs):
        step["n"] += 1
        return engine.think_close_token if step["n"] in (3, 8) else real(logits, *args, **kwargs)

    monkeypatch.setattr(E, "sample_token", sampler)
    events: q.Queue = q.Queue()
    prompt = engine.tokenize("<｜User｜>hi<｜Assistant｜><think>\n")
    try:
        engine.submit(E.GenerationRequest(prompt_tokens=prompt, max_tokens=14, wait_forcing=1, temperature=1.0,
                                           top_p=1.0, seed=0), events.put)
        got = []
        while not got or got[-1].kind != "done":
            got.append(events.get(timeout=30))
    finally:
        engine.close()
    reasoning = "".join(e.text for e in got if e.kind == "reasoning")
    answer = "".join(e.text for e in got if e.kind == "answer")
    assert reasoning.count("Wait") == 1 and answer, (reasoning, answer)
    assert "</think>" not in reasoning
