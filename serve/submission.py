"""A request's engine sequences on the asyncio side: events cross from the engine thread into one queue of
(choice index, event); a client that goes away cancels them; the non-streaming endpoints collect them."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from fastapi import Request

from r1_distill.errors import UserError
from r1_distill.llama.engine import BatchEngine, EngineFailed, Event, GenerationRequest, QueueFull

from .errors import APIError


class Submission:
    """Several engine requests (choices) feeding one asyncio queue of (choice index, event)."""

    def __init__(self, engine: BatchEngine, requests: list[GenerationRequest]):
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue = asyncio.Queue()
        self.remaining = len(requests)
        self.checked = time.monotonic()
        # events cross from the engine thread in batches: one wake-up of the event loop per batch, not
        # per event (a token makes up to three), so the loop steals less CPU from llama.cpp's threads
        self._inbox: list = []
        self._inbox_lock = threading.Lock()
        self._wake_pending = False
        emits = [(lambda ev, i=i: self._post((i, ev))) for i in range(len(requests))]
        try:
            self.cancels = engine.submit_many(requests, emits)
        except QueueFull:
            raise APIError(503, "the server is busy: every slot is taken and the queue is full; retry shortly",
                           type_="server_error", code="queue_full", headers={"Retry-After": "1"}) from None
        except EngineFailed as exc:
            raise APIError(503, f"the engine is not running ({exc}); retry shortly", type_="server_error",
                           headers={"Retry-After": "2"}) from None
        except UserError as exc:
            raise APIError(400, str(exc)) from None

    def _post(self, item) -> None:  # engine thread
        with self._inbox_lock:
            self._inbox.append(item)
            if self._wake_pending:
                return
            self._wake_pending = True
        self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:  # event loop
        with self._inbox_lock:
            items, self._inbox, self._wake_pending = self._inbox, [], False
        for item in items:
            self.events.put_nowait(item)

    def cancel(self) -> None:
        for cancel in self.cancels:
            cancel()

    async def next(self, request: Optional[Request] = None) -> tuple[int, Event]:
        """The next event; with `request`, a client that went away cancels everything (499)."""
        while True:
            if request is not None and time.monotonic() - self.checked > 0.25:
                self.checked = time.monotonic()  # checked on a clock: events may never pause
                if await request.is_disconnected():
                    self.cancel()
                    raise APIError(499, "client disconnected")
            try:
                i, ev = await asyncio.wait_for(self.events.get(), timeout=0.25)
            except asyncio.TimeoutError:
                continue
            if ev.kind == "done":
                self.remaining -= 1
            return i, ev


@dataclass
class ChoiceResult:
    reasoning: str = ""
    answer: str = ""
    raw: str = ""
    logprobs: list[dict] = field(default_factory=list)
    done: Optional[Event] = None


def raise_if_failed(ev: Event) -> None:
    if ev.finish_reason == "error" and ev.usage.get("engine_stopped"):
        raise APIError(503, f"{ev.usage.get('error')}; it is restarting, retry shortly", type_="server_error",
                       headers={"Retry-After": "2"})
    if ev.finish_reason == "error":
        raise APIError(500, f"generation failed: {ev.usage.get('error')}", type_="server_error")


async def collect(request: Request, sub: Submission, metrics) -> list[ChoiceResult]:
    results = [ChoiceResult() for _ in sub.cancels]
    try:
        while sub.remaining:
            i, ev = await sub.next(request)
            r = results[i]
            if ev.kind == "done":
                r.done = ev
                if ev.finish_reason == "error":
                    sub.cancel()
                    raise_if_failed(ev)
                metrics.record(ev.usage)
            elif ev.kind == "logprob":
                r.logprobs.append(ev.data)
            else:
                setattr(r, ev.kind, getattr(r, ev.kind) + ev.text)
    except asyncio.CancelledError:
        sub.cancel()
        raise
    return results
