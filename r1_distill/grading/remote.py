"""Remote sandboxes for the code check, as options beside the local bubblewrap one (:mod:`.sandbox`).

A sandbox spec names where a program runs:

* ``local`` (the default): bubblewrap on this machine;
* ``piston:URL``: a Piston server (github.com/engineer-man/piston, self-hosted or public), through its
  HTTP API: ``POST URL/api/v2/execute`` for a server's root (``http://localhost:2000``), or
  ``POST URL/execute`` for a URL that names the API already (``https://emkc.org/api/v2/piston``);
* ``e2b``: an E2B cloud sandbox through its own SDK (``pip install 'r1-distill[e2b]'``, ``E2B_API_KEY``),
  one per graded completion, its tests run one after another in it.

Every runner takes a Python program, its stdin and the :class:`~.sandbox.Limits`, and returns the
local sandbox's :class:`~.sandbox.RunResult` with a `reason` worded as the local one words it, so the
code check reads every runner alike. A sandbox that cannot run the program (a server that cannot be
reached, answers 5xx or refuses the request; no SDK or key) raises :class:`~.sandbox.SandboxUnavailable`,
and the check fails with that one line, as it does when bwrap is missing: never a pass, never a crash.

What each remote sandbox can enforce of the limits: Piston takes the wall clock, CPU time and memory
per request (its server caps them: `PISTON_RUN_TIMEOUT`, `PISTON_RUN_CPU_TIME`, ...); its process
and output caps are the server's, and stdout is cut here at the output limit. E2B runs the program
under `ulimit` (CPU, address space, processes, file size) and `timeout` inside its VM, with the
internet cut off.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from r1_distill.errors import UserError

from .sandbox import Limits, RunResult, SandboxUnavailable, _reason, run_python

SPECS = "local, piston:URL (a Piston server, e.g. piston:http://localhost:2000) or e2b"
ROUND_TRIP_S = 10.0  # per test on a remote sandbox: the request, on top of the program's wall clock
E2B_START_S = 30.0  # creating an E2B sandbox

Runner = Callable[[str, str, Limits], RunResult]  # (program, stdin, limits) -> how it ended


def parse_spec(spec: str) -> tuple[str, Optional[str]]:
    """("local", None), ("piston", URL) or ("e2b", None); anything else is a UserError naming the choices."""
    spec = (spec or "").strip()
    if spec in ("local", "e2b"):
        return spec, None
    if spec.startswith("piston:"):
        url = spec[len("piston:"):].rstrip("/")
        if url.startswith(("http://", "https://")) and len(url.split("://", 1)[1]) > 0:
            return "piston", url
        raise UserError(f"sandbox {spec!r}: piston needs the server's URL, e.g. piston:http://localhost:2000")
    raise UserError(f"unknown sandbox {spec!r}: choose {SPECS}")


def extra_seconds(spec: str, tests: int) -> float:
    """What a remote sandbox adds to the hard limit of grading one completion with `tests` tests."""
    kind, _ = parse_spec(spec)
    return 0.0 if kind == "local" else tests * ROUND_TRIP_S + (E2B_START_S if kind == "e2b" else 0.0)


@contextmanager
def open_runner(spec: str = "local", lifetime_s: float = 300.0) -> Iterator[Runner]:
    """The runner a spec names, for the tests of one completion (an E2B sandbox lives this long at most)."""
    kind, url = parse_spec(spec)
    if kind == "local":
        yield run_python
    elif kind == "piston":
        with PistonRunner(url) as runner:
            yield runner
    else:
        with E2BRunner(lifetime_s) as runner:
            yield runner


PROBE_OUTPUT = 4000  # characters a probe prints: Piston's stock output cap (1,024) would drop correct answers


def require_sandbox(spec: str) -> None:
    """Before a run with code problems: the sandbox runs a small program under the default limits (E2B:
    one sandbox is started, which checks the key and quota), or a UserError says why not, rather than
    every code completion failing as unavailable after the run."""
    parse_spec(spec)
    try:
        with open_runner(spec) as run:
            result = run(f"print(6 * 7)\nprint('x' * {PROBE_OUTPUT})", "", Limits())
    except SandboxUnavailable as exc:
        raise UserError(f"the code sandbox ({spec}) cannot run programs: {exc}") from None
    if not result.ok or result.stdout.split() != ["42", "x" * PROBE_OUTPUT]:
        raise UserError(f"the code sandbox ({spec}) failed a small program (printing {PROBE_OUTPUT} characters): "
                        f"{result.reason or 'wrong output'}; stdout {result.stdout[:60]!r}, "
                        f"stderr {result.stderr.strip()[-200:]!r}")


# the local sandbox's words for each limit, so that every runner's reasons read alike
def _wall_reason(limits: Limits) -> str:
    return _reason(None, "", limits)


def _cpu_reason(limits: Limits) -> str:
    return _reason(-signal.SIGXCPU, "", limits)


def _output_reason(limits: Limits) -> str:
    return _reason(-signal.SIGXFSZ, "", limits)


# -- Piston ---------------------------------------------------------------------------------------
class PistonRunner:
    """Runs each program with one `POST .../api/v2/execute` to a Piston server."""

    def __init__(self, url: str):
        import httpx

        self.url = url.rstrip("/")
        self.endpoint = self.url + ("/execute" if "/api/v2" in self.url else "/api/v2/execute")
        self.client = httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0))

    def __enter__(self) -> "PistonRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()

    def request(self, program: str, stdin: str, limits: Limits) -> dict:
        return {"language": "python", "version": "*", "files": [{"name": "main.py", "content": program}],
                "stdin": stdin, "args": [], "compile_timeout": 10_000, "run_timeout": int(limits.wall_s * 1000),
                "run_cpu_time": limits.cpu_s * 1000, "run_memory_limit": limits.memory_mb << 20}

    def __call__(self, program: str, stdin: str, limits: Limits) -> RunResult:
        import httpx

        started = time.monotonic()
        wait_s = limits.wall_s + ROUND_TRIP_S  # within the check's hard limit, which allows this per test
        try:
            response = self.client.post(self.endpoint, json=self.request(program, stdin, limits),
                                        timeout=httpx.Timeout(wait_s, connect=5.0))
        except httpx.ReadTimeout:
            raise SandboxUnavailable(f"Piston at {self.url} did not answer within {wait_s:g} s: is it overloaded?") from None
        except httpx.HTTPError as exc:
            raise SandboxUnavailable(
                f"Piston at {self.url} cannot be reached ({type(exc).__name__}: {str(exc)[:100]}): start it "
                f"(docker run -p 2000:2000 -e PISTON_RUN_TIMEOUT=60000 -e PISTON_OUTPUT_MAX_SIZE=1048576 ghcr.io/engineer-man/piston, then install python) or fix --sandbox piston:URL"
            ) from None
        seconds = time.monotonic() - started
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message", ""))[:200]
            except ValueError:
                message = response.text[:200]
            status = response.status_code
            hint = (" (the server's caps: PISTON_RUN_TIMEOUT, PISTON_RUN_CPU_TIME, PISTON_RUN_MEMORY_LIMIT)"
                    if "limit" in message else " (rate-limited: fewer --workers, or a server of your own)" if status == 429
                    else " (the server failed: see its log)" if status >= 500 else "")
            raise SandboxUnavailable(f"Piston at {self.url} answered HTTP {status}: {message or 'no message'}{hint}")
        try:
            run = response.json()["run"]
        except (ValueError, KeyError, TypeError):
            raise SandboxUnavailable(f"Piston at {self.url} answered without a 'run' result: is it a Piston v2 server?") from None
        if run.get("status") == "XX":
            raise SandboxUnavailable(f"Piston at {self.url} failed internally: {run.get('message') or 'no message'}")
        return piston_result(run, limits, seconds)


def piston_result(run: dict, limits: Limits, seconds: float) -> RunResult:
    """Piston's `run` object as a RunResult. Newer servers (isolate) say how it ended in `status`:
    TO (time: CPU, or "wall clock" in `message`), SG (a signal; SIGKILL there is the memory cgroup),
    RE (an exit code), OL/EL (output caps); older ones give only `code` and `signal`."""
    cap = limits.output_kb << 10
    stdout, stderr = run.get("stdout") or "", (run.get("stderr") or "")[-4000:]
    status, message, sig = run.get("status"), str(run.get("message") or ""), run.get("signal")
    code: Optional[int] = run.get("code")
    if sig:
        code = -signal.Signals[sig].value if sig in signal.Signals.__members__ else None
    cpu_ms = run.get("cpu_time")
    if status == "TO" or (status is None and sig == "SIGKILL" and seconds >= limits.wall_s):
        if "wall" not in message.lower() and cpu_ms is not None and cpu_ms >= limits.cpu_s * 1000:
            reason = _cpu_reason(limits)
        else:
            code, reason = None, _wall_reason(limits)
    elif status in ("OL", "EL"):  # the server's own cap, PISTON_OUTPUT_MAX_SIZE (stock: 1,024 characters)
        reason = f"output limit: over the Piston server's cap ({message or status}; raise PISTON_OUTPUT_MAX_SIZE)"
    elif len(stdout.encode("utf-8", "replace")) > cap:
        reason = _output_reason(limits)
    elif sig == "SIGKILL" and "MemoryError" not in stderr:  # SG: the memory cgroup; no status: an old server's cap
        reason = f"memory limit: over {limits.memory_mb} MiB, killed" if status == "SG" else "killed by SIGKILL"
    elif code is None:
        reason = f"killed by {sig or 'Piston, no exit code'}"
    else:
        reason = _reason(code, stderr, limits)
    return RunResult(exit_code=code, stdout=stdout.encode("utf-8", "replace")[:cap].decode("utf-8", "ignore"),
                     stderr=stderr, seconds=seconds, reason=reason, limits=limits)


# -- E2B ------------------------------------------------------------------------------------------
E2B_INSTALL = "pip install 'r1-distill[e2b]' and set E2B_API_KEY"


class E2BRunner:
    """One E2B sandbox (created at the first program, killed at the end), each program in a folder of
    its own there, under `ulimit` and `timeout`."""

    def __init__(self, lifetime_s: float):
        if importlib.util.find_spec("e2b") is None:
            raise SandboxUnavailable(f"the e2b sandbox needs the 'e2b' package, which is not installed: {E2B_INSTALL}")
        if not os.environ.get("E2B_API_KEY"):
            raise SandboxUnavailable(f"the e2b sandbox needs an API key: E2B_API_KEY is not set ({E2B_INSTALL})")
        self.lifetime_s = int(max(60, lifetime_s))
        self.sandbox = None
        self.runs = 0

    def __enter__(self) -> "E2BRunner":
        return self

    def __exit__(self, *exc) -> None:
        if self.sandbox is not None:
            try:
                self.sandbox.kill()
            except Exception:  # it dies at its timeout anyway
                pass

    def _started(self):
        if self.sandbox is None:
            from e2b import Sandbox

            try:
                self.sandbox = Sandbox.create(timeout=self.lifetime_s, allow_internet_access=False)
            except Exception as exc:
                raise SandboxUnavailable(f"an E2B sandbox could not start ({type(exc).__name__}: {str(exc)[:150]}); "
                                         f"check E2B_API_KEY and your E2B quota") from None
        return self.sandbox

    def __call__(self, program: str, stdin: str, limits: Limits) -> RunResult:
        from e2b.exceptions import TimeoutException
        from e2b.sandbox.commands.command_handle import CommandExitException

        sandbox = self._started()
        self.runs += 1
        folder = f"/tmp/r1-run-{self.runs}"
        started = time.monotonic()
        try:
            sandbox.files.write(f"{folder}/main.py", program)
            sandbox.files.write(f"{folder}/input.txt", stdin)
        except Exception as exc:
            raise SandboxUnavailable(f"E2B: writing the program failed ({type(exc).__name__}: {str(exc)[:150]})") from None
        cap = limits.output_kb << 10
        # stdout goes to a file, so the file-size limit caps it as the local sandbox does; `timeout`
        # exits 124 when the wall clock ran out; the braces keep bash's "Segmentation fault" notice out
        command = (f"cd {folder} && ulimit -t {limits.cpu_s} -v {limits.memory_mb << 10} -u {limits.processes + 4} "
                   f"-f {limits.output_kb} -c 0; {{ timeout -k 1 {limits.wall_s:g} python3 -I main.py < input.txt "
                   f"> out.txt 2> err.txt; }} 2> /dev/null; code=$?; head -c {cap} out.txt; tail -c 4000 err.txt >&2; exit $code")
        wait_s = limits.wall_s + ROUND_TRIP_S  # `timeout` has killed the program well before this
        try:
            result = sandbox.commands.run(command, timeout=wait_s)  # E2B runs it with bash -l -c
            code: Optional[int] = 0
            stdout, stderr = result.stdout, result.stderr
        except CommandExitException as exc:
            code, stdout, stderr = exc.exit_code, exc.stdout, exc.stderr
        except TimeoutException:
            raise SandboxUnavailable(f"E2B: the sandbox did not answer within {wait_s:g} s") from None
        except Exception as exc:
            raise SandboxUnavailable(f"E2B: running the program failed ({type(exc).__name__}: {str(exc)[:150]})") from None
        seconds = time.monotonic() - started
        if code in (124, 137) and seconds >= limits.wall_s:  # `timeout` ran out (137: it had to SIGKILL)
            code = None
        reason = _reason(code, stderr or "", limits)
        return RunResult(exit_code=code, stdout=stdout or "", stderr=(stderr or "")[-4000:], seconds=seconds,
                         reason=reason, limits=limits)
