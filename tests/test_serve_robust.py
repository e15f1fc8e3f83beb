"""Nothing a client sends stops the server: well-typed but odd or out-of-range requests each get an
answer (a 4xx naming the problem, or a 200), and a normal request right after still answers in seconds.
If the engine thread dies anyway, requests fail fast with a 503 and the engine is restarted."""

import json
import time

import httpx
import pytest

pytestmark = pytest.mark.slow

CHAT, COMPLETIONS, RESPONSES = "/v1/chat/completions", "/v1/completions", "/v1/responses"
HI = [{"role": "user", "content": "hi"}]
NESTED = b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def chat(**fields):
    return CHAT, {"messages": HI, "max_tokens": 3, **fields}


ODD = [
    chat(seed=-1), chat(seed=2**64), chat(seed=2**64 - 1), chat(seed=0), chat(seed=-(2**70)),
    chat(top_p=0), chat(top_p=1e-12), chat(temperature=1e9), chat(temperature=2), chat(temperature=0, top_k=1),
    chat(top_k=10**9), chat(top_k=-1), chat(stop=[f"s{i}" for i in range(64)]), chat(stop=["x" * 256] * 16),
    chat(stop="y" * 10_000), chat(n=10**6), chat(n=16, max_tokens=2), chat(n=0),
    (CHAT, {"messages": [{"role": "user", "content": "\ud800 lone"}], "max_tokens": 2}),
    chat(stop=["\udfff"]),
    (CHAT, {"messages": [{"role": "user", "content": "emoji \U0001F600 and NUL \x00"}], "max_tokens": 2}),
    (CHAT, {"messages": [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(3001)],
            "max_tokens": 2}),
    (CHAT, {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}] * 5000}], "max_tokens": 2}),
    chat(max_tokens=2**31 - 1), chat(max_tokens=2**63), chat(max_completion_tokens=10**12),
    chat(logit_bias={"0": 100}), chat(logit_bias={"-1": 5}), chat(logit_bias={"99999999": 1}),
    chat(logit_bias={"5": 1e9}), chat(logit_bias={str(i): -100 for i in range(2000)}),
    chat(presence_penalty=-2, frequency_penalty=2, repetition_penalty=10), chat(repetition_penalty=0),
    chat(repeat_penalty=1.1, repetition_penalty=1.2), chat(repeat_last_n=-1, repeat_penalty=1.3),
    chat(repeat_last_n=-2), chat(thinking_budget_tokens=0), chat(thinking_budget_tokens=2**40),
    chat(budget_forcing_waits=16, max_tokens=20), chat(reasoning_effort="minimal"), chat(reasoning_effort="none"),
    chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}),
    chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#"}}}),
    chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "(("}}}),
    chat(response_format={"type": "json_schema", "json_schema": {"name": "x"}}), chat(response_format={"type": "regex"}),
    chat(chat_template_kwargs={"enable_thinking": "no"}), chat(chat_template_kwargs={"add_generation_prompt": False}),
    chat(logprobs=True, top_logprobs=20), chat(logprobs=True, top_logprobs=21), chat(top_logprobs=3),
    chat(stream=True, n=4, max_tokens=4), chat(stream=True, stop=["a", "b"], max_tokens=1),
    chat(tools=[{"type": "function", "function": {"name": "f"}}]),
    (CHAT, {"messages": [{"role": "tool", "content": "x"}], "max_tokens": 2}),
    (CHAT, {"messages": [*HI, {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}], "max_tokens": 2}),
    (COMPLETIONS, {"prompt": [10**9], "max_tokens": 2}), (COMPLETIONS, {"prompt": [-1], "max_tokens": 2}),
    (COMPLETIONS, {"prompt": [[1, 2], [3]], "n": 8, "max_tokens": 2}),
    (COMPLETIONS, {"prompt": [[1, 2], [3]], "n": 9, "max_tokens": 2}),
    (COMPLETIONS, {"prompt": "x", "logprobs": 21}), (COMPLETIONS, {"prompt": "x", "echo": True}),
    (RESPONSES, {"input": "hi", "previous_response_id": "resp_1"}), (RESPONSES, {"input": []}),
    (RESPONSES, {"input": [{"type": "function_call", "name": "f"}]}), (RESPONSES, {"input": "hi", "max_output_tokens": 0}),
    (RESPONSES, {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}),
    (CHAT, NESTED),
]


def test_odd_requests_never_stop_the_server(server):
    assert len(ODD) >= 30
    statuses = []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for path, body in ODD:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()  # ASCII escapes carry lone surrogates
            r = http.post(path, content=raw, headers={"content-type": "application/json"})
            statuses.append(r.status_code)
            assert r.status_code < 500, (path, str(body)[:120], r.status_code, r.text[:300])
            if r.status_code >= 400:
                err = r.json()["error"]
                assert err["message"] and err["type"] == "invalid_request_error", (str(body)[:120], err)
            start = time.perf_counter()
            ok = http.post(CHAT, json={"messages": HI, "max_tokens": 2}, timeout=20)
            assert ok.status_code == 200 and ok.json()["choices"][0]["finish_reason"], (str(body)[:120], ok.text[:200])
            assert time.perf_counter() - start < 20
        health = http.get("/health").json()
    assert health["status"] == "ok" and health["slots_busy"] == 0 and health["queue_length"] == 0
    assert statuses.count(200) >= 10 and sum(400 <= s < 500 for s in statuses) >= 20, statuses


def test_named_problems(server):
    """The 4xx says which field is wrong."""
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for fields, word in [({"seed": -1}, "seed"), ({"top_p": 0}, "top_p"), ({"logit_bias": {"99999999": 1}}, "logit_bias"),
                             ({"frobnicate": 1}, "unsupported parameter"), ({"response_format": {"type": "regex"}}, "response_format"),
                             ({"repetition_penalty": 0}, "repetition_penalty")]:
            r = http.post(CHAT, json={"messages": HI, **fields})
            assert r.status_code == 400 and word in r.json()["error"]["message"], (fields, r.text)
        r = http.post(CHAT, content=json.dumps({"messages": [{"role": "user", "content": "\ud800"}]}).encode(),
                      headers={"content-type": "application/json"})
        assert r.status_code == 400 and "surrogate" in r.json()["error"]["message"]


def test_a_dead_engine_fails_fast_and_is_restarted(tiny_gguf):
    """Fault injection: the engine loop itself raises. The request in flight gets a 503 at once,
    /health says so, and a fresh engine takes over."""
    from fastapi.testclient import TestClient

    from r1_distill.serve import ServerConfig, create_app
    from r1_distill.llama.engine import BatchEngine

    app = create_app(ServerConfig(model=str(tiny_gguf)),
                     engine_factory=lambda: BatchEngine(str(tiny_gguf), parallel=1, ctx=256))
    with TestClient(app) as http:
        deadline = time.time() + 60
        while http.get("/health").status_code != 200 and time.time() < deadline:
            time.sleep(0.1)
        assert http.post(CHAT, json={"messages": HI, "max_tokens": 2}).status_code == 200
        first = app.state.r1.engine

        def broken_admit():
            raise RuntimeError("injected fault")

        first._admit = broken_admit
        start = time.perf_counter()
        r = http.post(CHAT, json={"messages": HI, "max_tokens": 2})
        assert r.status_code == 503 and "injected fault" in r.json()["error"]["message"]
        assert time.perf_counter() - start < 5
        assert first.failure and not first.healthy
        deadline = time.time() + 60
        while http.get("/health").status_code != 200 and time.time() < deadline:
            time.sleep(0.1)
        assert http.get("/health").json()["status"] == "ok" and app.state.r1.engine is not first
        assert http.post(CHAT, json={"messages": HI, "max_tokens": 2}).status_code == 200
        assert "r1_distill_engine_restarts_total 1" in http.get("/metrics").text
