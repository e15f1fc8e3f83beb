"""`r1-distill serve` as a subprocess on a free port of 127.0.0.1, up once /health answers 200.

For pipelines that need a local OpenAI-compatible teacher for a while (the demo's sampling stage) and
for the tests, which drive the real server over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from r1_distill.errors import UserError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout_s: float, alive: Callable[[], bool], poll_s: float = 0.3) -> str:
    """Polls `url`/health until it answers 200. Returns "ok"; "exited" once `alive()` is false; "error: ..."
    when the server reports that its model failed to load; "timeout" after `timeout_s`."""
    import httpx

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if not alive():
            return "exited"
        try:
            answer = httpx.get(url.rstrip("/") + "/health", timeout=5)
            if answer.status_code == 200:
                return "ok"
            if answer.json().get("status") == "error":
                return f"error: {answer.json().get('error')}"
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(poll_s)
    return "timeout"


def stop_process(proc: subprocess.Popen, grace_s: float = 15) -> None:
    """SIGTERM, then SIGKILL if it is still there after `grace_s`."""
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class ServerProcess:
    def __init__(self, model: str | Path, *extra: str, port: int | None = None, models_file: str | None = None,
                 log: str | Path | None = None, timeout_s: float = 120):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log) if log else Path(model).parent / f"serve-{self.port}.log"
        self._log = open(self.log_path, "w")
        registry = ["--models", str(models_file)] if models_file else []
        self.proc = subprocess.Popen([sys.executable, "-m", "r1_distill", *registry, "serve", "--model", str(model),
                                      "--port", str(self.port), *extra], stdout=self._log, stderr=subprocess.STDOUT)
        state = wait_healthy(self.url, timeout_s, alive=lambda: self.proc.poll() is None)
        if state == "ok":
            return
        self.stop()
        if state == "exited":
            raise UserError(f"the server exited ({self.proc.returncode}): "
                            f"{self.log_path.read_text()[-2000:].strip()} (log: {self.log_path})")
        raise UserError(f"the server did not become healthy ({state}); see {self.log_path}")

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
