"""Which models a chat session may pick, and the local servers that serve picked GGUF files.

A session's choice lives in its own model picker (one per browser tab); the servers are shared: two
sessions that pick the same GGUF talk to one server. In public mode (`--share` or a non-local
`--host`) only what the command line named is offered, and a value a browser sends that is not in
that list is refused here, whatever the page says.
"""

from __future__ import annotations

import socket
import threading
from collections import OrderedDict
from pathlib import Path

from r1_distill.errors import UserError

def is_url(choice: str) -> bool:
    return choice.startswith(("http://", "https://"))


def local_models(dirs: list[str]) -> list[str]:
    found = []
    for d in dirs:
        if Path(d).is_dir():
            found += sorted(str(p) for p in Path(d).rglob("*.gguf"))[:50]
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """r1-distill's server for a GGUF, in this process, on a free 127.0.0.1 port."""

    def __init__(self, gguf: str, ctx: int = 4096):
        import uvicorn

        from r1_distill.serve.app import ServerConfig, create_app

        if not Path(gguf).is_file():
            raise UserError(f"model file {gguf} does not exist: pick a .gguf file that exists, or an http(s):// endpoint")
        self.port = _free_port()
        app = create_app(ServerConfig(model=gguf, port=self.port, parallel=2, ctx=ctx))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class ModelPool:
    """Local servers by GGUF path, started when first picked; the least recently used stops beyond `limit`."""

    def __init__(self, limit: int = 2):
        self.limit = limit
        self._servers: OrderedDict[str, LocalServer] = OrderedDict()
        self._lock = threading.Lock()

    def url_for(self, gguf: str) -> str:
        key = str(Path(gguf).resolve())
        with self._lock:
            if key in self._servers:
                self._servers.move_to_end(key)
                return self._servers[key].url
            self._servers[key] = LocalServer(gguf)
            while len(self._servers) > self.limit:
                _, oldest = self._servers.popitem(last=False)
                oldest.stop()
            return self._servers[key].url

    def stop_all(self) -> None:
        with self._lock:
            for server in self._servers.values():
                server.stop()
            self._servers.clear()


class ModelChoices:
    """The model picker's list and the check of what a session picked."""

    def __init__(self, endpoints: list[str], models: list[str], public: bool, search_dirs: list[str]):
        self.public = public
        named = list(endpoints) + list(models)
        found = [] if public else [m for m in local_models(search_dirs) if m not in named]
        self.offered = named + found
        if not self.offered:
            raise UserError("pass --model FILE.gguf or --endpoint URL (an OpenAI-compatible server)")
        self.pool = ModelPool()

    @property
    def default(self) -> str:
        return self.offered[0]

    def endpoint_for(self, choice: str | None) -> str:
        """The base URL to send a session's turn to; UserError for a choice this app does not allow."""
        choice = (choice or "").strip() or self.default
        if self.public and choice not in self.offered:
            raise UserError(f"{choice} is not offered by this app: pick one of the listed models")
        if is_url(choice):
            return choice
        if not choice.endswith(".gguf"):
            raise UserError(f"{choice} is neither a .gguf file nor an http(s):// endpoint")
        return self.pool.url_for(choice)
