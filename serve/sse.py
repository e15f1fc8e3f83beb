"""Server-sent events, the same way for every streaming endpoint."""

from __future__ import annotations

import json
from typing import AsyncIterator

from fastapi.responses import StreamingResponse

from .errors import error_body


def sse(body: dict) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def generation_failed(sub, done) -> str:
    """The error event of a stream whose generation failed; the request's other sequences stop."""
    sub.cancel()
    return sse(error_body(f"generation failed: {done.usage.get('error')}", "server_error"))


def sse_response(events: AsyncIterator[str], sub) -> StreamingResponse:
    """Streams `events`; a client that goes away before the end frees the request's slots at once."""

    async def guarded():
        completed = False
        try:
            async for part in events:
                yield part
            completed = True
        finally:
            if not completed:
                sub.cancel()

    return StreamingResponse(guarded(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
