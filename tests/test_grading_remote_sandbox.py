"""Remote sandboxes for the code check (`--sandbox piston:URL`, `--sandbox e2b`), r1_distill.grading.remote.

Piston's server cannot run here (it needs Docker and the internet), so it is stood in for: a small HTTP
server on 127.0.0.1, started by the test, speaks Piston's v2 execute API (`POST /api/v2/execute`, its
request fields, its `run` answer with isolate's statuses TO/SG/RE/OL and messages, 400 with a `message`
for a request over its configured limits) and runs each program for real in our local bubblewrap
sandbox. What is tested is our client: the request it sends and how it reads every answer, end to end
through the grading pool, `filter` and the GRPO reward. E2B is tested only where it needs no account:
without its package or key the check fails with the install-and-key message. A bad spec is refused by
the CLI with one line and exit code 2, and so is a sandbox that cannot run a one-line program.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from support import JsonHandler, stand_in_server
from r1_distill.grading import TraceParts, grade, reward_function
from r1_distill.grading.code import code_reference
from r1_distill.grading.pool import GradingPool
from r1_distill.grading.sandbox import Limits, run_python
from r1_distill.teacher.filter import FilterConfig, filter_traces
from r1_distill.traces import TraceRecord, read_traces, write_traces

PROBLEMS = [json.loads(line) for line in (Path(__file__).parent / "data" / "code_problems.jsonl").read_text().splitlines()]
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason=(
    "the stand-in Piston server runs programs in bubblewrap, which is not installed: apt-get install -y bubblewrap"))
MAX_RUN_TIMEOUT_MS = 20_000  # the stand-in server's configured maximum, as PISTON_RUN_TIMEOUT
CAPS = {"run_timeout": MAX_RUN_TIMEOUT_MS, "output_max_size": None}  # PISTON_RUN_TIMEOUT, PISTON_OUTPUT_MAX_SIZE
STOCK_PISTON_CAPS = {"run_timeout": 3000, "output_max_size": 1024}  # what a Piston started without settings has


def _completion(program: str) -> str:
    return f"I will write it.\n</think>\n\nHere is the program:\n\n```python\n{program}```\n"


def _piston_run(request: dict) -> dict:
    """What a Piston (isolate) server answers for one request, the program run in our bwrap sandbox."""
    limits = Limits(wall_s=request["run_timeout"] / 1000, cpu_s=max(1, round(request["run_cpu_time"] / 1000)),
                    memory_mb=request["run_memory_limit"] >> 20)
    result = run_python(request["files"][0]["content"], request.get("stdin", ""), limits)
    run = {"stdout": result.stdout, "stderr": result.stderr, "output": result.stdout + result.stderr,
           "code": result.exit_code, "signal": None, "status": None, "message": None,
           "cpu_time": None, "wall_time": round(result.seconds * 1000), "memory": None}
    if result.reason.startswith("wall-clock"):
        run.update(code=None, signal="SIGKILL", status="TO", message="Time limit exceeded (wall clock)")
    elif result.reason.startswith("CPU time"):
        run.update(code=None, signal="SIGKILL", status="TO", message="Time limit exceeded",
                   cpu_time=request["run_cpu_time"])
    elif result.reason.startswith("output limit"):
        run.update(code=None, signal="SIGKILL", status="OL", message="stdout length exceeded")
    elif result.exit_code is not None and (result.exit_code < 0 or result.exit_code > 128):
        number = -result.exit_code if result.exit_code < 0 else result.exit_code - 128
        run.update(code=None, signal=signal.Signals(number).name, status="SG", message=f"Caught fatal signal {number}")
    elif result.exit_code:
        run.update(status="RE", message=f"Exited with error status {result.exit_code}")
    return run


@pytest.fixture()
def piston():
    """A stand-in Piston v2 server: (its URL, the requests it received)."""
    received, lock = [], threading.Lock()

    class Handler(JsonHandler):
        def do_POST(self):
            if self.path != "/api/v2/execute":
                return self.send_json(404, {"message": "Not found"})
            request = self.read_json()
            with lock:
                received.append(request)
            if request.get("language") != "python" or not isinstance(request.get("version"), str):
                return self.send_json(400, {"message": f"{request.get('language')}-{request.get('version')} runtime is unknown"})
            if not request.get("files") or not request["files"][0].get("content"):
                return self.send_json(400, {"message": "files[0].content is required as a string"})
            if request["run_timeout"] > CAPS["run_timeout"]:
                return self.send_json(400, {"message": f"run_timeout cannot exceed the configured limit of {CAPS['run_timeout']}"})
            run = _piston_run(request)
            if CAPS["output_max_size"] and len(run["stdout"]) > CAPS["output_max_size"]:
                run.update(stdout=run["stdout"][:CAPS["output_max_size"]], code=None, signal="SIGKILL", status="OL",
                           message="stdout length exceeded")
            self.send_json(200, {"language": "python", "version": "3.12.0", "run": run})

    with stand_in_server(Handler) as url:
        yield url, received


def _records() -> list[TraceRecord]:
    return [TraceRecord.from_completion(problem_id=p["id"], problem=p["problem"], reference_answer=code_reference(p["tests"]),
                                        sample_index=k, teacher="t", backend="test", finish_reason="stop",
                                        completion=_completion(p["solution"] if ok else p["broken"]))
            for p in PROBLEMS for k, ok in enumerate([True, False])]


@needs_bwrap
def test_filter_through_piston_keeps_reference_solutions_and_drops_broken_ones(piston, tmp_path):
    url, received = piston
    write_traces(tmp_path / "traces.jsonl", _records())
    report = filter_traces(FilterConfig(traces=str(tmp_path / "traces.jsonl"), out=str(tmp_path / "out"),
                                        sandbox=f"piston:{url}", workers=2))
    kept = read_traces(tmp_path / "out" / "kept.jsonl")
    reasons = {r.problem_id: r.checks["correctness"].reason for r in read_traces(tmp_path / "out" / "dropped.jsonl")}
    assert sorted((r.problem_id, r.sample_index) for r in kept) == sorted((p["id"], 0) for p in PROBLEMS)
    assert report["dropped_by_first_reason"] == {"correctness": len(PROBLEMS)}
    assert "wrong output" in reasons["code-sum"] and "assertion failed" in reasons["code-prime"]
    # exponential fib(90) comes back TO: with the CPU spent (2 s), or on a busy machine the wall clock (6 s) first
    assert "CPU time limit: over 2 s of CPU" in reasons["code-fib"] or "wall-clock limit" in reasons["code-fib"]
    # every test went to the server, with the limits of the problem's tests
    assert len(received) >= sum(len(p["tests"]) for p in PROBLEMS)
    first = received[0]
    assert first["language"] == "python" and first["version"] == "*" and first["files"][0]["name"] == "main.py"
    assert (first["run_timeout"], first["run_cpu_time"], first["run_memory_limit"]) == (6000, 2000, 512 << 20)


@needs_bwrap
def test_piston_statuses_and_failures_come_back_as_verdicts(piston):
    url, received = piston
    spec = f"piston:{url}"

    def item(program: str, limits: dict = None) -> TraceParts:
        return TraceParts.from_text(_completion(program), reference=code_reference([{"input": "", "output": "ok"}], limits=limits))

    items = [item("print('ok')\n"),
             item("print('no')\n"),
             item("while True:\n    pass\n", {"wall_s": 1.5, "cpu_s": 4}),  # the wall clock runs out first: TO
             item("import sys\nsys.exit(3)\n"),
             item("print('ok')\n", {"wall_s": 30})]  # over the server's configured maximum: a 400
    with GradingPool(2) as pool:
        verdicts = [v["code"] for v in grade(items, ["code"], {"code": {"sandbox": spec}}, pool=pool)]
        unreachable = grade(items[:1], ["code", "correctness"], {"code": {"sandbox": "piston:http://127.0.0.1:9"},
                                                                 "correctness": {"sandbox": "piston:http://127.0.0.1:9"}},
                            pool=pool)[0]
    assert verdicts[0] == (True, "all 1 tests pass")
    assert not verdicts[1][0] and "wrong output: expected 'ok', got 'no\\n'" in verdicts[1][1]
    assert verdicts[2] == (False, "test 1 of 1: wall-clock limit: still running after 1.5 s, killed")
    assert verdicts[3] == (False, "test 1 of 1: exit code 3")
    assert not verdicts[4][0] and f"Piston at {url} answered HTTP 400: run_timeout cannot exceed" in verdicts[4][1]
    for name in ("code", "correctness"):  # the server is down: unavailable, named, neither a pass nor a crash
        passed, reason = unreachable[name]
        assert not passed and reason.startswith("Piston at http://127.0.0.1:9 cannot be reached") and "--sandbox" in reason
    assert len(received) == 5

    reward = reward_function("code", sandbox=spec)  # GRPO's reward through the same server
    completions = [[{"role": "assistant", "content": _completion(p[key])}] for p in PROBLEMS[:2] for key in ("solution", "broken")]
    answers = [code_reference(p["tests"]) for p in PROBLEMS[:2] for _ in range(2)]
    assert reward(completions=completions, answer=answers) == [1.0, 0.0, 1.0, 0.0]
    assert len(received) > 5


def test_e2b_without_its_package_or_key_fails_the_check_with_what_to_do(monkeypatch):
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    from r1_distill.grading.code import check_code

    item = TraceParts.from_text(_completion("print('ok')\n"), reference=code_reference([{"input": "", "output": "ok"}]))
    passed, reason = check_code(item, sandbox="e2b")
    assert not passed
    assert "pip install 'r1-distill[e2b]'" in reason and "E2B_API_KEY" in reason


def test_a_bad_sandbox_spec_is_refused_by_the_cli_in_one_line(tmp_path):
    write_traces(tmp_path / "traces.jsonl", _records()[:1])
    for spec, words in [("nonsense", "unknown sandbox 'nonsense'"), ("piston:", "piston needs the server's URL")]:
        run = subprocess.run([sys.executable, "-m", "r1_distill", "filter", "--traces", str(tmp_path / "traces.jsonl"),
                              "--out", str(tmp_path / "out"), "--sandbox", spec], capture_output=True, text=True,
                             timeout=120, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        assert run.returncode == 2, run.stderr[-2000:]
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], run.stderr
        assert "local, piston:URL" in lines[0] or spec == "piston:"
        assert not (tmp_path / "out").exists()
    # a sandbox that cannot run programs stops the run before it grades, rather than dropping every code trace
    run = subprocess.run([sys.executable, "-m", "r1_distill", "filter", "--traces", str(tmp_path / "traces.jsonl"),
                          "--out", str(tmp_path / "out"), "--sandbox", "piston:http://127.0.0.1:9"], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert "the code sandbox (piston:http://127.0.0.1:9) cannot run programs" in run.stderr and "cannot be reached" in run.stderr
    assert not (tmp_path / "out").exists()


@needs_bwrap
def test_a_stock_piston_is_refused_before_the_run_with_the_settings_to_change(piston, monkeypatch):
    from r1_distill.errors import UserError
    from r1_distill.grading.remote import require_sandbox

    url, _ = piston
    require_sandbox(f"piston:{url}")  # the stand-in as configured for the other tests: fine
    monkeypatch.setitem(CAPS, "run_timeout", STOCK_PISTON_CAPS["run_timeout"])
    with pytest.raises(UserError, match="run_timeout cannot exceed the configured limit of 3000.*PISTON_RUN_TIMEOUT"):
        require_sandbox(f"piston:{url}")
    monkeypatch.setitem(CAPS, "run_timeout", MAX_RUN_TIMEOUT_MS)
    monkeypatch.setitem(CAPS, "output_max_size", STOCK_PISTON_CAPS["output_max_size"])
    with pytest.raises(UserError, match="over the Piston server's cap.*raise PISTON_OUTPUT_MAX_SIZE"):
        require_sandbox(f"piston:{url}")
