"""What several tests use that is not a fixture: stand-in servers for services that cannot run here, a
recording endpoint in front of a real server, the chat app as a user starts it, polling, the repo's paths.
Fixtures live in conftest.py."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from r1_distill.server_process import ServerProcess as RunningServer  # noqa: F401  (tests import it from here)
from r1_distill.server_process import free_port

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
ARTIFACTS = REPO / "test-artifacts"


def until(check, seconds: float, every: float = 0.2):
    """check()'s first true value within `seconds`, else its last value."""
    deadline = time.time() + seconds
    while not (value := check()) and time.time() < deadline:
        time.sleep(every)
    return value


def bare(text: str) -> str:
    return "".join(text.split())  # a reopened answer may be drawn with other line breaks


class JsonHandler(BaseHTTPRequestHandler):
    """The handler of a stand-in server (a service that cannot run here): quiet, JSON in and out."""

    def log_message(self, *args):
        pass

    def read_json(self):
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def send_json(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextlib.contextmanager
def stand_in_server(handler: type[BaseHTTPRequestHandler]):
    """A real HTTP server on 127.0.0.1 in a thread, for the handler: yields its root URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def first_kept(task_traces: Path, n: int, folder: Path) -> Path:
    """The first n of task_traces' kept traces, as a kept.jsonl of their own in `folder`."""
    from r1_distill.traces import read_traces, write_traces

    path = folder / f"kept{n}.jsonl"
    write_traces(path, list(read_traces(task_traces / "kept.jsonl"))[:n])
    return path


class RecordingEndpoint:
    """A real HTTP endpoint on 127.0.0.1 in front of a real server: it forwards every request, streams the
    answer back and keeps what it got and sent. stop() makes it unreachable (connection refused) and
    start() brings it back on the same port."""

    def __init__(self, upstream: str, port: int | None = None):
        self.upstream = upstream.rstrip("/")
        self.port = port or free_port()
        self.exchanges: list[dict] = []  # {"path", "body": parsed JSON request, "response": bytes}
        self._server = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def chat_requests(self) -> list[dict]:
        return [e["body"] for e in self.exchanges if e["path"].endswith("/chat/completions") and e["body"]]

    def streamed(self, index: int) -> tuple[str, str]:
        """(thinking, answer) the endpoint streamed back for its index-th chat request."""
        chats = [e for e in self.exchanges if e["path"].endswith("/chat/completions")]
        thinking, answer = [], []
        for line in chats[index]["response"].decode("utf-8", "replace").splitlines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:]).get("choices") or []:
                    delta = choice.get("delta") or {}
                    thinking.append(delta.get("reasoning_content") or delta.get("reasoning") or "")
                    answer.append(delta.get("content") or "")
        return "".join(thinking), "".join(answer)

    def start(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import httpx

        endpoint = self

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the answer ends when the connection closes: no length to know up front

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.forward("GET")

            def do_POST(self):
                self.forward("POST")

            def forward(self, method):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                exchange = {"path": self.path, "body": json.loads(raw) if raw else None, "response": b""}
                endpoint.exchanges.append(exchange)
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization", "accept")}
                with httpx.stream(method, endpoint.upstream + self.path, content=raw or None, headers=headers,
                                  timeout=120) as answer:
                    self.send_response(answer.status_code)
                    for key, value in answer.headers.items():
                        if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                            self.send_header(key, value)
                    self.end_headers()
                    for piece in answer.iter_bytes():
                        exchange["response"] += piece
                        self.wfile.write(piece)
                        self.wfile.flush()

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Forward)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class ChatApp:
    """`r1-distill chat` as a user starts it, on a free port, its saved data under `data_dir`; what it says on
    stderr goes to a file there (a pipe nobody reads would stall it), read by stderr_text()."""

    def __init__(self, *args: str, port: int | None = None, data_dir: Path | None = None, env: dict | None = None,
                 stdout=None, host: str = "127.0.0.1", cwd: Path | None = None):
        import subprocess
        import sys
        import tempfile
        import time

        import httpx

        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}/"
        env = {**os.environ, **(env or {})}
        if data_dir is not None:
            env["R1_DISTILL_CHAT_DIR"] = str(data_dir)
        self.stderr_path = Path(data_dir or tempfile.mkdtemp()) / f"chat-app-{self.port}.stderr"
        self.stderr_path.parent.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "r1_distill", "chat", "--host", host, "--port", str(self.port),
                                      "--no-browser", *args], stdout=stdout or subprocess.DEVNULL, stderr=self._stderr,
                                     env=env, cwd=cwd)
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"the chat app exited ({self.proc.returncode}): {self.stderr_text()}")
            try:
                if httpx.get(self.url, timeout=2).status_code in (200, 401):
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the chat app did not start in 90 s: {self.stderr_text()}")

    def stderr_text(self, chars: int = 2000) -> str:
        return self.stderr_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        from r1_distill.server_process import stop_process

        stop_process(self.proc)
        self._stderr.close()


CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
