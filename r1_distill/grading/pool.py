"""Grading in worker processes, every step under a hard wall-clock limit, on all cores.

A job is one payload (a trace) and a list of steps (checks) run in order in one worker, whose results
come back in one message. Each step has its own limit (the worker marks in shared memory which step
runs since when): when it runs past it, the worker is killed (SIGKILL: nothing in it can refuse, not
math-verify stuck in C big-integer arithmetic, not a sandbox it started, which dies with it), the
step gets a :class:`Failure` with the reason, a fresh worker takes its place and the job's other
steps run there. A worker that dies (out of memory, a segfault) is the same: its step fails with
the exit code. Nothing waits forever and no item is lost.

Workers fork from a fork server that has imported the grading code once, so a replacement starts in
milliseconds and carries nothing of the parent (no torch, no CUDA, no open model).
"""

from __future__ import annotations

import atexit
import importlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any, Callable, Optional

PRELOAD = ["r1_distill.grading.registry", "r1_distill.grading.warm"]


@dataclass(frozen=True)
class Step:
    name: str  # the key of its result
    func: str  # "module:function", called as function(payload, **kwargs)
    kwargs: dict = field(default_factory=dict)
    timeout_s: float = 10.0


@dataclass
class Job:
    payload: Any
    steps: list[Step]
    key: Optional[str] = None  # jobs with one key go to one worker while it can (its caches stay warm)


@dataclass(frozen=True)
class Failure:
    """A step that did not return: it ran past its limit, its worker died, or it raised."""
    reason: str


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_FUNCS: dict[str, Callable] = {}


def _resolve(ref: str) -> Callable:
    if ref not in _FUNCS:
        module, name = ref.split(":")
        _FUNCS[ref] = getattr(importlib.import_module(module), name)
    return _FUNCS[ref]


def _worker_main(conn, progress, memory_mb: Optional[int]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when work stops
    if memory_mb:  # a hostile answer that builds a giant number fails here, not on the host
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # its time-outs come back as verdicts
    while True:
        try:
            chunk = conn.recv()
        except (EOFError, OSError):
            return
        if chunk is None:
            return
        answers = []
        for position, (job_id, payload, steps) in enumerate(chunk):
            results, seconds = [], []
            cpu_started = time.process_time()
            for i, step in enumerate(steps):
                started = time.monotonic()
                # the parent reads these to hold each step to its limit
                progress[0], progress[1], progress[2] = position, i, started
                try:
                    result = _resolve(step.func)(payload, **step.kwargs)
                except Exception as exc:
                    result = Failure(f"{step.name} raised {type(exc).__name__}: {str(exc)[:200]}")
                results.append(result)
                seconds.append(time.monotonic() - started)
            answers.append((job_id, results, seconds, time.process_time() - cpu_started))
        conn.send(answers)  # one message a chunk: a kill loses the chunk's answers, so chunks stay short


class _Worker:
    """One process; it is sent a chunk of jobs at a time and answers the chunk in one message, so a
    fast check is not dominated by the round trip."""

    def __init__(self, ctx, memory_mb: Optional[int]):
        self.conn, child = ctx.Pipe()
        self.progress = ctx.Array("d", 3, lock=False)  # [job in chunk, step running, when it started (monotonic)]
        self.proc = ctx.Process(target=_worker_main, args=(child, self.progress, memory_mb), daemon=True)
        self.proc.start()
        child.close()
        self.chunk: list[tuple[int, list[Step]]] = []  # (job id, steps) sent and not yet answered
        self.group: deque = deque()  # jobs of the key this worker is on

    def start(self, chunk: list[tuple[int, list[Step]]], jobs: list[Job]) -> None:
        self.chunk = list(chunk)
        self.progress[0], self.progress[1], self.progress[2] = 0, 0, time.monotonic()
        self.conn.send([(job_id, jobs[job_id].payload, steps) for job_id, steps in chunk])

    def running(self) -> tuple[int, list[Step], int]:
        """The job id the worker is on, its steps and the step running (the chunk is answered whole, so
        every job in it is unanswered until then)."""
        job_id, steps = self.chunk[min(int(self.progress[0]), len(self.chunk) - 1)]
        return job_id, steps, min(int(self.progress[1]), len(steps) - 1)

    @property
    def deadline(self) -> float:
        _, steps, step = self.running()
        return self.progress[2] + steps[step].timeout_s

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


class GradingPool:
    """`run(jobs)` grades every job and returns, for each, {step name: result or Failure}."""

    def __init__(self, workers: Optional[int] = None, memory_mb: Optional[int] = 4096):
        self.size = max(1, workers or available_cpus())
        self.memory_mb = memory_mb  # address-space cap of each worker
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(PRELOAD)
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()  # one run at a time (TRL may call rewards from threads)
        self.killed = 0  # workers killed for running past a limit, or found dead
        self.seconds: list[dict[str, float]] = []  # the last run's wall time per job and step
        self.cpu_seconds = 0.0
        self._job_s: Optional[float] = None  # running mean of a job's wall seconds, for the chunk size

    def _ensure(self) -> None:
        self._workers = [w for w in self._workers if w.proc.is_alive()]
        while len(self._workers) < self.size:
            self._workers.append(_Worker(self._ctx, self.memory_mb))

    def run(self, jobs: list[Job]) -> list[dict[str, Any]]:
        with self._lock:
            return self._run(jobs)

    def _run(self, jobs: list[Job]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = [{} for _ in jobs]
        self.seconds = [{} for _ in jobs]
        self.cpu_seconds = 0.0  # CPU time the workers spent on this run's finished jobs
        groups: dict[Any, deque] = {}
        for i, job in enumerate(jobs):
            if job.steps:
                groups.setdefault(job.key if job.key is not None else ("job", i), deque()).append((i, job.steps))
        queue = deque(groups.values())  # groups not yet begun; a worker drains its own group first
        if not queue:
            return results

        def chunk_size() -> int:
            """About 20 ms of work a message once the jobs' cost is known, fewer near the end so that
            no worker waits on another, one at a time for slow jobs (a kill reruns the whole chunk)."""
            by_cost = 4 if self._job_s is None else int(0.02 / max(self._job_s, 1e-4))
            left = sum(map(len, queue)) + sum(len(w.group) for w in self._workers)
            return max(1, min(16, by_cost, left // (self.size * 4)))

        self._ensure()
        idle = deque(self._workers)
        for worker in idle:
            worker.group = deque()
        busy: dict[Any, _Worker] = {}

        def next_chunk(worker: _Worker) -> list:
            chunk, size = [], chunk_size()
            while len(chunk) < size and (worker.group or queue):
                if not worker.group:
                    worker.group = queue.popleft()
                chunk.append(worker.group.popleft())
            if chunk:
                return chunk
            donor = max(self._workers, key=lambda w: len(w.group))  # the tail: take from the longest group
            return [donor.group.pop() for _ in range(min(size, (len(donor.group) + 1) // 2))]

        def receive(worker: _Worker) -> bool:
            """Read the chunk's answers; False when the worker is gone."""
            try:
                answers = worker.conn.recv()
            except (EOFError, OSError):
                return False
            steps_of = dict(worker.chunk)
            for job_id, step_results, step_seconds, cpu in answers:
                self.cpu_seconds += cpu
                for step, result, seconds in zip(steps_of[job_id], step_results, step_seconds):
                    results[job_id][step.name] = result
                    self.seconds[job_id][step.name] = seconds
                job_s = sum(step_seconds)
                self._job_s = job_s if self._job_s is None else 0.8 * self._job_s + 0.2 * job_s
            worker.chunk = []
            return True

        while queue or busy or any(w.group for w in self._workers):
            for worker in list(idle):
                chunk = next_chunk(worker)
                if not chunk:
                    break
                idle.remove(worker)
                worker.start(chunk, jobs)
                busy[worker.conn] = worker
            if not busy:
                continue
            now = time.monotonic()
            timeout = max(0.0, min(w.deadline for w in busy.values()) - now)
            for conn in wait(list(busy), timeout=timeout):
                worker = busy[conn]
                if not receive(worker):
                    worker.proc.join(1)
                    self._fail(worker, results, f"the grading process died (exit code {worker.proc.exitcode})")
                    del busy[conn]
                    idle.append(self._replace(worker))
                    continue
                del busy[conn]
                idle.append(worker)
            now = time.monotonic()
            for conn, worker in list(busy.items()):
                if now >= worker.deadline:
                    if conn.poll() and receive(worker):  # it answered just now
                        del busy[conn]
                        idle.append(worker)
                        continue
                    _, steps, step = worker.running()
                    self._fail(worker, results, f"{steps[step].name} timed out after {steps[step].timeout_s:g} s (hard limit)")
                    del busy[conn]
                    idle.append(self._replace(worker))
        return results

    def _fail(self, worker: _Worker, results, reason: str) -> None:
        """The running step fails; the job's other steps and the chunk's other jobs (finished ones too:
        answers come back with the whole chunk) run again on a fresh worker."""
        job_id, steps, i = worker.running()
        results[job_id][steps[i].name] = Failure(reason)
        self.seconds[job_id][steps[i].name] = time.monotonic() - worker.progress[2]
        again = [(j, s) for j, s in worker.chunk if j != job_id]
        rest = steps[:i] + steps[i + 1:]
        if rest:
            again.insert(0, (job_id, rest))
        worker.group.extendleft(reversed(again))
        worker.chunk = []

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        self.killed += 1
        fresh = _Worker(self._ctx, self.memory_mb)
        fresh.group = worker.group
        self._workers = [fresh if w is worker else w for w in self._workers]
        return fresh

    def close(self) -> None:
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for worker in self._workers:
            worker.proc.join(2)
            worker.kill()
        self._workers = []

    def __enter__(self) -> "GradingPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_SHARED: Optional[GradingPool] = None


def shared_pool() -> GradingPool:
    """One pool per process for callers that grade a batch at a time (GRPO rewards, eval)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = GradingPool()
        atexit.register(_SHARED.close)
    return _SHARED
