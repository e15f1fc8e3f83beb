"""The `code` check in a real bubblewrap sandbox: hostile programs contained with a verdict and a reason,
and our own small problem set (tests/data/code_problems.jsonl: stdin/stdout cases, asserts and a
HumanEval-style check) through filter, eval's grading and GRPO rewards."""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from support import JsonHandler, stand_in_server
from r1_distill.grading import TraceParts, grade, reward_function
from r1_distill.grading.code import code_reference, wall_limit
from r1_distill.grading.pool import GradingPool
from r1_distill.teacher.filter import FilterConfig, filter_traces
from r1_distill.traces import TraceRecord, read_traces, write_traces

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason=(
    "bubblewrap (bwrap) is not installed: apt-get install -y bubblewrap (python3 dev.py setup installs it as root)"))

PROBLEMS = [json.loads(line) for line in (Path(__file__).parent / "data" / "code_problems.jsonl").read_text().splitlines()]


def _completion(program: str) -> str:
    return f"I will write it.\n</think>\n\nHere is the program:\n\n```python\n{program}```\n"


def _sandbox_processes() -> int:
    from r1_distill.grading.sandbox import SANDBOX_UID_BASE

    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid >= SANDBOX_UID_BASE and " Z " not in (entry / "stat").read_text()
            except OSError:
                pass
    return count


@pytest.fixture()
def host_listener():
    """A TCP server on the host's loopback: a sandboxed program must not reach it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    hits = []

    def serve():
        try:
            conn, _ = server.accept()
            hits.append(1)
            conn.sendall(b"pong")
            conn.close()
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], hits
    server.close()


def test_hostile_code_is_contained_with_a_verdict_and_a_reason(tmp_path, host_listener, monkeypatch):
    port, hits = host_listener
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    canary = tmp_path / "canary.txt"
    monkeypatch.setenv("R1_TEST_SECRET", "TOPSECRET")
    before = _sandbox_processes()
    # (name, program, expected output if the sandbox leaked, words the reason must contain)
    hostile = [
        ("fork bomb", "import os\nwhile True:\n    os.fork()\n", "x", "process limit"),
        ("endless loop", "while True:\n    pass\n", "x", "CPU time limit"),
        ("sleeps forever", "import time\ntime.sleep(1000)\n", "x", "wall-clock limit"),
        ("memory hog", "x = bytearray(3 * 1024 ** 3)\nprint(len(x))\n", str(3 * 1024 ** 3), "memory limit"),
        ("output flood", "while True:\n    print('x' * 4096)\n", "x", "output limit"),
        ("network", f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint(s.recv(4).decode())\n",
         "pong", "Connection refused"),
        ("internet", "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)\nprint('out')\n", "out",
         "Network is unreachable"),
        ("writes outside its folder", f"open({str(canary)!r}, 'w').write('x')\nprint('written')\n", "written",
         "No such file or directory"),
        ("writes the system", "open('/usr/lib/evil', 'w').write('x')\nprint('written')\n", "written", "Read-only file system"),
        ("reads the host's files", f"print(open({str(secret)!r}).read())\n", "TOPSECRET", "No such file or directory"),
        ("reads the host's environment", "import os\nprint(os.environ.get('R1_TEST_SECRET'))\n", "TOPSECRET", "wrong output"),
        ("kills the host's init", "import os, signal\nos.kill(1, signal.SIGKILL)\nprint('killed')\n", "pid 1 survived", "wrong output"),
    ]
    limits = {"wall_s": 4, "cpu_s": 2}
    items = [TraceParts.from_text(_completion(program), reference=code_reference([{"input": "", "output": leaked}], limits=limits))
             for _, program, leaked, _ in hostile]
    started = time.monotonic()
    with GradingPool() as pool:
        verdicts = grade(items, ["code"], pool=pool)
        seconds = [s["code"] for s in pool.seconds]
    elapsed = time.monotonic() - started
    for (name, _, _, words), verdict, s in zip(hostile, verdicts, seconds):
        passed, reason = verdict["code"]
        assert not passed, name
        assert words in reason, (name, reason)
        assert s < wall_limit(items[0].reference), (name, s)  # the check's hard limit: wall clock, start, clean-up
    assert elapsed < 40
    assert not canary.exists() and not hits  # nothing written on the host, nothing reached its network
    assert Path("/usr/lib/evil").exists() is False
    deadline = time.monotonic() + 5  # the kernel tears a pid namespace down when its init is gone
    while _sandbox_processes() > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _sandbox_processes() <= before  # the fork bomb left nothing behind


def _records(kind: str) -> list[TraceRecord]:
    return [TraceRecord.from_completion(problem_id=p["id"], problem=p["problem"], reference_answer=code_reference(p["tests"]),
                                        sample_index=k, teacher="t", backend="test", finish_reason="stop",
                                        completion=_completion(p["solution"] if ok else p["broken"]))
            for p in PROBLEMS for k, ok in enumerate([True, False]) if kind in ("both", "right" if ok else "wrong")]


def test_filter_keeps_reference_solutions_and_drops_broken_ones(tmp_path):
    write_traces(tmp_path / "traces.jsonl", _records("both"))
    report = filter_traces(FilterConfig(traces=str(tmp_path / "traces.jsonl"), out=str(tmp_path / "out")))
    kept = read_traces(tmp_path / "out" / "kept.jsonl")
    dropped = read_traces(tmp_path / "out" / "dropped.jsonl")
    assert sorted((r.problem_id, r.sample_index) for r in kept) == sorted((p["id"], 0) for p in PROBLEMS)
    assert report["dropped_by_first_reason"] == {"correctness": len(PROBLEMS)}
    reasons = {r.problem_id: r.checks["correctness"].reason for r in dropped}
    assert "CPU time limit" in reasons["code-fib"]  # exponential recursion on fib(90)
    assert "wrong output" in reasons["code-sum"] and "assertion failed" in reasons["code-prime"]
    assert all(r.checks["readability"].passed for r in kept)  # code blocks are the point of a code trace


def test_eval_grades_code_samples_with_the_same_check():
    from r1_distill.distill.evaluate import score_problem, summarize

    by_problem = {}
    for r in _records("both"):
        by_problem.setdefault(r.problem_id, []).append(r)
    per_problem = [score_problem(rs) for rs in by_problem.values()]
    assert [p["pass@1"] for p in per_problem] == [0.5] * len(PROBLEMS)
    assert summarize(per_problem, 2)["pass@1"] == 0.5


def test_code_as_a_grpo_reward():
    code, correctness = reward_function("code"), reward_function("correctness")
    completions = [[{"role": "assistant", "content": _completion(p[key])}] for p in PROBLEMS for key in ("solution", "broken")]
    answers = [code_reference(p["tests"]) for p in PROBLEMS for _ in range(2)]
    assert code(completions=completions, answer=answers) == [1.0, 0.0] * len(PROBLEMS)
    assert correctness(completions=completions, answer=answers) == [1.0, 0.0] * len(PROBLEMS)
    no_block = [[{"role": "assistant", "content": "Done.\n</think>\n\nprint(5)"}]]
    assert code(completions=no_block, answer=answers[:1]) == [0.0]


def test_code_prompts_load_with_their_tests_and_do_not_mix_with_math(tmp_path):
    from r1_distill.errors import UserError
    from r1_distill.teacher.generate import GenerateConfig, generate
    from r1_distill.prompts import CODE_PROMPT_SUFFIX, load_prompts

    code_file = Path(__file__).parent / "data" / "code_problems.jsonl"
    prompts = load_prompts(str(code_file))
    assert {p.kind for p in prompts} == {"code"} and json.loads(prompts[0].answer)["code_tests"]["tests"][0]["input"] == "2 3\n"
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(code_file.read_text() + json.dumps({"id": "m", "problem": "1+1?", "answer": "2"}) + "\n")
    with pytest.raises(UserError, match="mixes math and code"):
        generate(GenerateConfig(teacher="http://127.0.0.1:9/v1", model="m", prompts=str(mixed), out=str(tmp_path / "o")))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "b", "problem": "p", "tests": [{"input": "1"}]}) + "\n")
    with pytest.raises(UserError, match="test 1 is neither"):
        load_prompts(str(bad))
    assert "```python" in CODE_PROMPT_SUFFIX


@pytest.mark.slow
def test_ten_grpo_steps_with_the_code_reward(small_vocab_model, tmp_path):
    prompts = Path(__file__).parent / "data" / "code_problems.jsonl"
    out = tmp_path / "grpo"
    run = subprocess.run([sys.executable, "-m", "r1_distill", "grpo", "--model", str(small_vocab_model),
                          "--prompts", str(prompts), "--out", str(out), "--steps", "10", "--num-generations", "4",
                          "--prompts-per-step", "2", "--max-completion-length", "16", "--rewards", "code,format",
                          "--prompt-suffix", "", "--lr", "1e-4"], capture_output=True, text=True, timeout=900,
                         env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    assert run.returncode == 0, run.stderr[-3000:]
    steps = [h for h in json.loads((out / "log_history.json").read_text()) if "loss" in h]
    assert len(steps) == 10 and all("rewards/code_reward/mean" in h for h in steps)
    assert all(h["rewards/code_reward/mean"] == 0.0 for h in steps)  # a random model writes no passing program


@pytest.fixture()
def scripted_teacher():
    """An OpenAI-compatible endpoint that answers each code problem once with its reference solution
    and once with its broken one: a teacher whose outputs we know, so eval's figures are known."""
    served, prompts, lock = {}, [], threading.Lock()

    class Handler(JsonHandler):
        def do_GET(self):
            self.send_json(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})

        def do_POST(self):
            request = self.read_json()
            user = request["messages"][-1]["content"]
            problem = next(p for p in PROBLEMS if user.startswith(p["problem"]))
            with lock:
                prompts.append(user)
                n = served[problem["id"]] = served.get(problem["id"], 0) + 1
            program = problem["solution"] if n % 2 else problem["broken"]
            self.send_json(200, {"id": f"r{n}", "object": "chat.completion", "created": 0, "model": "scripted",
                                 "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                     "role": "assistant", "reasoning_content": "I will write it.",
                                     "content": f"Here is the program:\n\n```python\n{program}```"}}],
                                 "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}})

    with stand_in_server(Handler) as url:
        yield url + "/v1", prompts


def test_eval_on_code_problems_end_to_end(scripted_teacher, tmp_path):
    url, prompts = scripted_teacher
    bench = Path(__file__).parent / "data" / "code_problems.jsonl"
    run = subprocess.run([sys.executable, "-m", "r1_distill", "eval", "--model", url, "--bench", str(bench),
                          "--out", str(tmp_path / "eval"), "--samples", "2", "--max-tokens", "256"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["problems"] == len(PROBLEMS) and summary["pass@1"] == 0.5 and summary["pass@1_stderr"] == 0.0
    results = {r["id"]: r for r in map(json.loads, (tmp_path / "eval" / "results.jsonl").read_text().splitlines())}
    assert all(r["correct"] == 1 for r in results.values())
    assert any("all 3 tests pass" in v for v in results["code-sum"]["verdicts"])
    assert any("wrong output" in v for v in results["code-sum"]["verdicts"])
    assert all("```python" in p for p in prompts)  # generate asked for a code block, not a \boxed{} answer
