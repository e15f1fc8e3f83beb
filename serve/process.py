"""`r1-distill serve` as a subprocess on a free port of 127.0.0.1, up once /health answers 200.

For pipelines that need a local OpenAI-compatible teacher for a while (the demo's sampling stage) and
for the tests, which drive the real server over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from r1_distill.errors import UserError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        import httpx

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log) if log else Path(model).parent / f"serve-{self.port}.log"
        self._log = open(self.log_path, "w")
        registry = ["--models", str(models_file)] if models_file else []
        self.proc = subprocess.Popen([sys.executable, "-m", "r1_distill", *registry, "serve", "--model", str(model),
                                      "--port", str(self.port), *extra], stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self._log.close()
                raise UserError(f"the server exited ({self.proc.returncode}): "
                                f"{self.log_path.read_text()[-2000:].strip()} (log: {self.log_path})")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise UserError(f"the server did not become healthy in {timeout_s:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
