"""The server's outer layer as plain ASGI (not BaseHTTPMiddleware, which hides a client's disconnect
from the endpoint): API key, body size, request counts by status, and OpenAI-shaped 500s for bugs."""

from __future__ import annotations

import json
import logging

from .errors import error_body

log = logging.getLogger("r1_distill.serve")


async def _send_json(send, status: int, body: dict, headers: list | None = None) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": payload})


async def _drain(receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body"):
            return


class Guard:
    def __init__(self, app, *, api_key: str | None, metrics, max_body: int):
        self.app, self.api_key, self.metrics, self.max_body = app, api_key, metrics, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.api_key and (path.startswith("/v1/") or path == "/tokenize") and scope.get("method") != "OPTIONS":
            if headers.get("authorization", "") != f"Bearer {self.api_key}":
                self.metrics.count(path, 401)
                return await _send_json(send, 401, error_body(
                    "invalid or missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key"))
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            self.metrics.count(path, 413)
            if int(length) <= 16 * self.max_body:
                await _drain(receive)  # a client still sending would not read the answer
            return await _send_json(send, 413, error_body(f"request body over {self.max_body} bytes"))
        state = {"status": None}

        async def send_tracked(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as exc:  # a bug: still OpenAI's shape, and the server stays up
            log.exception("unhandled error on %s", path)
            if state["status"] is None:
                state["status"] = 500
                try:
                    await _send_json(send, 500, error_body(f"internal error: {type(exc).__name__}", "server_error"))
                except Exception:
                    pass
        finally:
            self.metrics.count(path, state["status"] or 499)
