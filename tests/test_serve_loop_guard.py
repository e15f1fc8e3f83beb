"""The runaway-thinking guard on a real server: the tiny GGUF, decoded greedily, repeats one token for
ever (one token 25 times, then another: the guard fires 64 tokens into
the second); the server closes its thinking and the model answers, says so in the response and in /metrics;
`reasoning_loop_guard: false` lets it think until the token limit."""

import json

import httpx
import pytest

from support import RunningServer

pytestmark = pytest.mark.slow

MSGS = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server(tiny_gguf):
    srv = RunningServer(tiny_gguf, "--parallel", "2", "--ctx", "512", "--threads", "1")
    yield srv
    srv.stop()


def loops_closed(server) -> int:
    line = next(l for l in httpx.get(server.url + "/metrics").text.splitlines()
                if l.startswith("r1_distill_reasoning_loops_closed_total "))
    return int(line.split()[1])


def test_looping_thinking_is_closed_and_answered_unless_turned_off(server):
    before = loops_closed(server)
    with httpx.Client(base_url=server.url, timeout=120) as http:
        body = {"messages": MSGS, "max_tokens": 110, "temperature": 0}
        guarded = http.post("/v1/chat/completions", json=body).json()
        choice = guarded["choices"][0]
        assert choice["reasoning_closed"] == "loop"
        assert choice["message"]["content"], "the model answers once the thinking is closed"
        assert guarded["usage"]["completion_tokens_details"]["reasoning_tokens"] < 110
        assert loops_closed(server) == before + 1

        free = http.post("/v1/chat/completions", json={**body, "reasoning_loop_guard": False}).json()
        choice = free["choices"][0]
        assert "reasoning_closed" not in choice and choice["finish_reason"] == "length"
        assert choice["message"]["content"] == ""
        assert free["usage"]["completion_tokens_details"]["reasoning_tokens"] == 110

        with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
            chunks = [json.loads(l[6:]) for l in r.iter_lines() if l.startswith("data: {")]
        assert chunks[-1]["choices"][0]["reasoning_closed"] == "loop"
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)

        resp = http.post("/v1/responses", json={"input": "hi", "max_output_tokens": 110, "temperature": 0}).json()
        assert resp["reasoning_closed"] == "loop" and resp["output"][-1]["content"][0]["text"]
        off = http.post("/v1/responses", json={"input": "hi", "max_output_tokens": 110, "temperature": 0,
                                               "reasoning_loop_guard": False}).json()
        assert "reasoning_closed" not in off and off["status"] == "incomplete"
        assert http.post("/v1/chat/completions", json={**body, "reasoning_loop_guard": "no"}).status_code == 400
    assert loops_closed(server) == before + 3
