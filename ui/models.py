"""Which models a chat session may pick, and the local servers that serve picked GGUF files.

A session's choice lives in its own model picker (one per browser tab); the servers are shared: two
sessions that pick the same GGUF talk to one server. In public mode (`--share` or a non-local
`--host`) only what the command line named is offered, and a value a browser sends that is not in
that list is refused here, whatever the page says.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from r1_distill.errors import UserError
from r1_distill.server_process import free_port, wait_healthy

READY_TIMEOUT_S = 600  # a big GGUF on a slow disk takes a while to load


def is_url(choice: str) -> bool:
    return choice.startswith(("http://", "https://"))


def local_models(dirs: list[str]) -> list[str]:
    found = []
    for d in dirs:
        if Path(d).is_dir():
            found += sorted(str(p) for p in Path(d).rglob("*.gguf"))[:50]
    return found


def split_draft(choice: str) -> tuple[str, str | None]:
    """`FILE.gguf` or `FILE.gguf:draft=DRAFT.gguf` (served with speculative decoding): (file, draft)."""
    gguf, sep, draft = choice.partition(":draft=")
    return gguf, (draft if sep else None)


class LocalServer:
    """r1-distill's server for a GGUF (and its draft model, `FILE.gguf:draft=DRAFT.gguf`), in this process,
    on a free 127.0.0.1 port."""

    def __init__(self, choice: str, ctx: int = 4096):
        import uvicorn

        from r1_distill.serve import ServerConfig, create_app

        gguf, draft = split_draft(choice)
        for path in filter(None, (gguf, draft)):
            if not Path(path).is_file():
                raise UserError(f"model file {path} does not exist: pick a .gguf file that exists, or an http(s):// endpoint")
        self.gguf = choice
        self.port = free_port()
        # a draft with another vocabulary fails the load: wait_ready() says why
        app = create_app(ServerConfig(model=gguf, port=self.port, parallel=2, ctx=ctx, draft=draft))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.ready = False

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until /health says the model is loaded; UserError when it failed or took longer than timeout_s."""
        if self.ready:
            return
        state = wait_healthy(f"http://127.0.0.1:{self.port}", timeout_s, alive=self.thread.is_alive)
        if state == "ok":
            self.ready = True
            return
        if state.startswith("error: "):
            raise UserError(f"{self.gguf} did not load: {state[len('error: '):]}")
        why = "its server stopped" if state == "exited" else f"it was not loaded after {timeout_s:.0f} s"
        raise UserError(f"the model {self.gguf} is not ready: {why}")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class ModelPool:
    """Local servers by GGUF path, started when first picked. Beyond `limit` the least recently used
    one that no turn is streaming from stops; when every one is busy, a new pick is refused."""

    def __init__(self, limit: int = 2):
        self.limit = limit
        self._servers: OrderedDict[str, LocalServer] = OrderedDict()
        self._in_flight: Counter[str] = Counter()  # turns streaming from each server
        self._lock = threading.Lock()

    def url_for(self, gguf: str, hold: bool = False) -> str:
        """The server's base URL once its model is loaded; hold=True counts a turn in flight (release() it)."""
        key = str(Path(gguf).resolve())
        with self._lock:
            if key not in self._servers:
                idle = [k for k in self._servers if not self._in_flight[k]]
                if len(self._servers) >= self.limit and not idle:
                    raise UserError(f"{self.limit} models are loaded and answering other chats: pick one of them, "
                                    "or this one again once they are done")
                self._servers[key] = LocalServer(gguf)
                while len(self._servers) > self.limit:
                    self._servers.pop(idle.pop(0)).stop()
            self._servers.move_to_end(key)
            server = self._servers[key]
            if hold:
                self._in_flight[key] += 1
        try:
            server.wait_ready()
        except UserError:
            if hold:
                self.release(gguf)
            raise
        return server.url

    def release(self, gguf: str) -> None:
        with self._lock:
            self._in_flight[str(Path(gguf).resolve())] -= 1

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

    def _checked(self, choice: str | None) -> str:
        choice = (choice or "").strip() or self.default
        if self.public and choice not in self.offered:
            raise UserError(f"{choice} is not offered by this app: pick one of the listed models")
        if not (is_url(choice) or choice.endswith(".gguf")):
            raise UserError(f"{choice} is neither a .gguf file nor an http(s):// endpoint")
        return choice

    def endpoint_for(self, choice: str | None) -> str:
        """The base URL for a choice (a GGUF's server started and loaded); UserError for one this app does not allow."""
        choice = self._checked(choice)
        return choice if is_url(choice) else self.pool.url_for(choice)

    @contextmanager
    def turn(self, choice: str | None) -> Iterator[str]:
        """endpoint_for() for one turn: a GGUF's server is not stopped while the turn streams from it."""
        choice = self._checked(choice)
        if is_url(choice):
            yield choice
            return
        url = self.pool.url_for(choice, hold=True)
        try:
            yield url
        finally:
            self.pool.release(choice)
