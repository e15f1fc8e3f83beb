"""The grading pool: worker processes on every core, each step under a hard wall limit, nothing lost."""

import re
import time

from r1_distill.grading.pool import Failure, GradingPool, Job, Step, available_cpus


def test_jobs_run_side_by_side_on_every_worker():
    """Four one-second jobs on two workers take two seconds, not four (sleep needs no CPU, so this
    holds on a busy machine too)."""
    jobs = [Job(1.0, [Step("sleep", "time:sleep", {}, 5)]) for _ in range(4)]
    with GradingPool(workers=2) as pool:
        pool.run([Job(0.0, [Step("sleep", "time:sleep", {}, 5)])] * 2)  # workers up
        started = time.monotonic()
        results = pool.run(jobs)
        elapsed = time.monotonic() - started
    assert [r["sleep"] for r in results] == [None] * 4
    assert 1.9 < elapsed < 3.0
    assert available_cpus() >= 1


def test_a_step_that_ignores_signals_is_killed_at_its_hard_limit():
    """Catastrophic regex backtracking runs in C and never sees SIGALRM: only a kill stops it. The
    pool kills the worker, fails that step with the reason, runs the job's next steps on a fresh
    worker, and the other jobs are unaffected."""
    stuck = Step("stuck", "re:match", {"string": "a" * 60 + "b"}, timeout_s=1.5)
    after = Step("after", "re:escape", {}, timeout_s=5)
    jobs = [Job(r"(a+)+$", [stuck, after]), Job("ok", [after])]
    started = time.monotonic()
    with GradingPool(workers=2) as pool:
        results = pool.run(jobs)
        killed = pool.killed
    assert time.monotonic() - started < 6
    assert isinstance(results[0]["stuck"], Failure) and "timed out after 1.5 s" in results[0]["stuck"].reason
    assert results[0]["after"] == re.escape(r"(a+)+$") and results[1]["after"] == "ok"
    assert killed == 1


def test_a_worker_that_dies_fails_its_step_with_the_exit_code():
    with GradingPool(workers=1) as pool:
        results = pool.run([Job(7, [Step("exit", "os:_exit", {}, 5)]), Job("x", [Step("fine", "re:escape", {}, 5)])])
    assert isinstance(results[0]["exit"], Failure) and "exit code 7" in results[0]["exit"].reason
    assert results[1]["fine"] == "x"


def test_jobs_sent_in_chunks_lose_nothing_around_a_killed_one():
    """Many fast jobs go to a worker several to a message; a stuck one in the middle of a chunk and a
    worker that dies in another fail alone, and every other job still gets its own answer."""
    fast = Step("escape", "re:escape", {}, timeout_s=5)
    jobs = [Job(f"item {i}", [fast]) for i in range(300)]
    jobs[57] = Job(r"(a+)+$", [Step("stuck", "re:match", {"string": "a" * 60 + "b"}, timeout_s=1.0), fast])
    jobs[201] = Job(3, [Step("exit", "os:_exit", {}, 5), Step("escape", "builtins:str", {}, 5)])
    with GradingPool(workers=2) as pool:
        results = pool.run(jobs)
        killed = pool.killed
    assert "timed out after 1 s" in results[57]["stuck"].reason and results[57]["escape"] == re.escape(r"(a+)+$")
    assert "exit code 3" in results[201]["exit"].reason and results[201]["escape"] == "3"
    assert [r["escape"] for i, r in enumerate(results) if i not in (57, 201)] == \
        [re.escape(f"item {i}") for i in range(300) if i not in (57, 201)]
    assert killed == 2
