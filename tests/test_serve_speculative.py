"""`serve --lookup N` on a real server: the same answer as the plain server, drafts counted in each response's
usage (OpenAI's accepted/rejected_prediction_tokens) and in /metrics; a bad --draft/--lookup stops the command
in one line, exit 2."""

import subprocess
import sys

import httpx
import pytest

from support import RunningServer

pytestmark = pytest.mark.slow

BODY = {"messages": [{"role": "user", "content": "Say the cat sat on the mat."}], "max_tokens": 64, "temperature": 0,
        "reasoning_loop_guard": False}


def metric(url: str, name: str) -> float:
    line = next(l for l in httpx.get(url + "/metrics").text.splitlines() if l.startswith(f"r1_distill_{name} "))
    return float(line.split()[1])


def test_lookup_server_answers_as_the_plain_one_and_counts_its_drafts(server, tiny_gguf):
    plain = httpx.post(server.url + "/v1/chat/completions", json=BODY, timeout=120).json()
    fast = RunningServer(tiny_gguf, "--parallel", "2", "--ctx", "512", "--lookup", "8")
    try:
        got = httpx.post(fast.url + "/v1/chat/completions", json=BODY, timeout=120).json()
        details = got["usage"]["completion_tokens_details"]
        assert got["choices"][0]["message"] == plain["choices"][0]["message"]
        assert details["accepted_prediction_tokens"] > 0
        assert details["accepted_prediction_tokens"] + details["rejected_prediction_tokens"] == metric(fast.url, "draft_tokens_total")
        assert metric(fast.url, "draft_tokens_accepted_total") == details["accepted_prediction_tokens"]
        assert 0 < metric(fast.url, "draft_acceptance_rate") <= 1
    finally:
        fast.stop()
    assert "accepted_prediction_tokens" not in plain["usage"]["completion_tokens_details"]


@pytest.mark.parametrize("flags, says", [
    (["--lookup", "4", "--draft", "x.gguf"], "give one of them"),
    (["--draft", "missing.gguf"], "not a .gguf file"),
    (["--lookup", "-1"], "--lookup must be 0 or more"),
])
def test_bad_speculation_flags_stop_in_one_line(tiny_gguf, tmp_path, flags, says):
    out = subprocess.run([sys.executable, "-m", "r1_distill", "serve", "--model", str(tiny_gguf), *flags],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert says in out.stderr and len(out.stderr.strip().splitlines()) == 1
