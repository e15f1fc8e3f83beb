"""What every endpoint shares: the engine's life (load, watch, restart), turning checked request fields
into engine requests, and a request's events on the asyncio side (with the client's disconnect)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from fastapi import Request
from pydantic import ValidationError

from r1_distill.errors import UserError

from .engine import BatchEngine, EngineFailed, Event, GenerationRequest, QueueFull
from .errors import APIError
from .grammar import GrammarError, response_format_grammar
from .sampling import Penalties, grammar_sampler
from .templating import ChatFormatter

log = logging.getLogger("r1_distill.serve")
MAX_BODY_BYTES = 4 << 20


class Runtime:
    """Holds the engine. Loads it in the background (503 meanwhile); if its thread dies, requests get a
    503 at once and a fresh engine is loaded; if that fails too, the process exits (when asked to) so
    that its supervisor restarts it."""

    def __init__(self, factory: Callable[[], BatchEngine], metrics, *, exit_on_failure: bool = False):
        self.factory, self.metrics, self.exit_on_failure = factory, metrics, exit_on_failure
        self.engine: Optional[BatchEngine] = None
        self.formatter: Optional[ChatFormatter] = None
        self.error: Optional[str] = None
        self.restarting = False
        self.last_failure: Optional[str] = None  # why the engine last stopped
        self.lock = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=self._load, name="r1-distill-load", daemon=True).start()

    def _load(self, after_failure: bool = False) -> None:
        try:
            engine = self.factory()
            engine.on_failure = self._engine_failed
            self.formatter = ChatFormatter(engine)
            self.engine, self.error = engine, None
            if not engine.healthy:  # died before the callback was set
                self._engine_failed(engine.failure or "the engine thread is not running")
        except Exception as exc:  # reported by /health and every request
            self.error = str(exc)
            if after_failure and self.exit_on_failure:
                log.error("the engine could not be restarted (%s): exiting", exc)
                os._exit(70)
        finally:
            self.restarting = False

    def _engine_failed(self, reason: str) -> None:
        with self.lock:
            if self.restarting:
                return
            self.restarting = True
            self.last_failure = reason
        log.error("the engine stopped (%s): restarting it", reason)
        self.metrics.bump("engine_restarts_total")
        old, self.engine = self.engine, None

        def restart():
            if old is not None:
                try:
                    old.close()
                except Exception:
                    pass
            self._load(after_failure=True)

        threading.Thread(target=restart, name="r1-distill-restart", daemon=True).start()

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()

    def status(self) -> tuple[int, dict]:
        engine = self.engine
        if self.error:
            return 503, {"status": "error", "error": self.error}
        if engine is not None and not engine.healthy:
            self._engine_failed(engine.failure or "the engine thread is not running")
            engine = None
        if engine is None:
            return 503, {"status": "restarting" if self.restarting else "loading"}
        return 200, {"status": "ok", "slots_busy": engine.busy_slots(), "slots_total": engine.parallel,
                     "queue_length": engine.queue_length()}

    def engine_or_503(self) -> BatchEngine:
        if self.error:
            raise APIError(503, f"the model failed to load: {self.error}", type_="server_error")
        engine = self.engine
        if engine is not None and not engine.healthy:
            self._engine_failed(engine.failure or "the engine thread is not running")
            engine = None
        if engine is None:
            what = (f"the engine is restarting after a failure ({self.last_failure})" if self.restarting
                    else "the model is still loading")
            raise APIError(503, what, type_="server_error", headers={"Retry-After": "2"})
        return engine


# -- request bodies -------------------------------------------------------------------------------
def _lone_surrogate(value: Any, path: str = "") -> Optional[str]:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            found = _lone_surrogate(k, path) or _lone_surrogate(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _lone_surrogate(v, f"{path}.{i}")
            if found:
                return found
    return None


def _problem(error: dict) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "body"
    if error["type"] == "extra_forbidden":
        return f"{where}: unsupported parameter (this server does not implement it)"
    return f"{where}: {error['msg']}"


async def parse(request: Request, model_cls):
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise APIError(413, f"request body over {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise APIError(400, "the body nests too deeply") from None
    if not isinstance(body, dict):
        raise APIError(400, f"the body must be a JSON object, got {type(body).__name__}")
    bad = _lone_surrogate(body)
    if bad:
        raise APIError(400, f"{bad}: the text holds a lone UTF-16 surrogate (not valid Unicode)", param=bad)
    try:
        return model_cls.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors()
        param = ".".join(str(p) for p in errors[0]["loc"]) or None
        raise APIError(400, "invalid request: " + "; ".join(_problem(e) for e in errors[:5]), param=param) from None


# -- engine requests ------------------------------------------------------------------------------
@dataclass
class Knobs:
    """Checked request fields, named the same whatever the endpoint calls them."""
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    seed: Optional[int] = None
    stop: list[str] = field(default_factory=list)
    thinking_budget: Optional[int] = None
    wait_forcing: int = 0
    logprobs: Optional[int] = None
    presence: Optional[float] = None
    frequency: Optional[float] = None
    repeat: Optional[float] = None
    repeat_last_n: Optional[int] = None
    logit_bias: Optional[dict[str, float]] = None
    response_format: Optional[dict] = None
    min_tokens: Optional[int] = None
    ignore_eos: bool = False


def checked_grammar(engine: BatchEngine, response_format: Optional[dict], param: str) -> Optional[str]:
    try:
        gbnf = response_format_grammar(response_format)
    except GrammarError as exc:
        raise APIError(400, str(exc), param=param) from None
    if gbnf is not None:
        sampler = grammar_sampler(engine.L, engine.vocab, gbnf)
        if sampler is None:
            raise APIError(400, "llama.cpp could not build a grammar from this response_format", param=param)
        engine.L.llama_sampler_free(sampler)
    return gbnf


def engine_request(engine: BatchEngine, tokens: list[int], knobs: Knobs, sampling, *, thinking: bool,
                   prompt_param: str, index: int = 0) -> GenerationRequest:
    if not tokens:
        raise APIError(400, "the prompt is empty", param=prompt_param)
    if len(tokens) >= engine.ctx_per_slot:
        raise APIError(400, f"the prompt is {len(tokens)} tokens; this server's context is {engine.ctx_per_slot} "
                            "tokens: shorten the conversation or restart the server with a larger --ctx",
                       param=prompt_param, code="context_length_exceeded")
    if any(t >= engine.n_vocab for t in tokens):
        raise APIError(400, f"the prompt holds token ids beyond the vocabulary ({engine.n_vocab})", param=prompt_param)
    if knobs.max_tokens is not None and knobs.max_tokens > engine.ctx_per_slot:
        raise APIError(400, f"max_tokens {knobs.max_tokens} exceeds the context of {engine.ctx_per_slot} tokens",
                       param="max_tokens")
    room = engine.ctx_per_slot - len(tokens)
    max_tokens = min(knobs.max_tokens or min(sampling.max_new_tokens, room), room)
    if knobs.min_tokens is not None and knobs.max_tokens is not None and knobs.min_tokens > knobs.max_tokens:
        raise APIError(400, f"min_tokens {knobs.min_tokens} exceeds max_tokens {knobs.max_tokens}", param="min_tokens")
    bias = None
    if knobs.logit_bias:
        bias = {int(k): float(v) for k, v in knobs.logit_bias.items()}
        beyond = [k for k in bias if k >= engine.n_vocab]
        if beyond:
            raise APIError(400, f"logit_bias: token id {beyond[0]} is beyond the vocabulary ({engine.n_vocab})",
                           param="logit_bias")
    last_n = knobs.repeat_last_n if knobs.repeat_last_n is not None else 64
    penalties = Penalties(repeat=float(knobs.repeat if knobs.repeat is not None else 1.0),
                          frequency=float(knobs.frequency or 0.0), presence=float(knobs.presence or 0.0),
                          last_n=engine.ctx_per_slot if last_n == -1 else min(last_n, engine.ctx_per_slot))
    return GenerationRequest(
        prompt_tokens=tokens, max_tokens=max_tokens,
        temperature=sampling.temperature if knobs.temperature is None else float(knobs.temperature),
        top_p=sampling.top_p if knobs.top_p is None else float(knobs.top_p), top_k=knobs.top_k or 0,
        seed=None if knobs.seed is None else (knobs.seed + index) % 2**64, stop=knobs.stop, thinking=thinking,
        thinking_budget=knobs.thinking_budget, wait_forcing=knobs.wait_forcing, logprobs=knobs.logprobs,
        penalties=penalties if penalties.active else None, logit_bias=bias,
        min_tokens=max_tokens if knobs.ignore_eos else min(knobs.min_tokens or 0, max_tokens),
        grammar=checked_grammar(engine, knobs.response_format, "response_format"))


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


def usage_totals(dones: list[Event], prompt_counted: list[bool]) -> dict:
    """Summed over choices; a prompt shared by several choices counts once."""
    prompt = sum(d.usage["prompt_tokens"] for d, first in zip(dones, prompt_counted) if first)
    cached = sum(d.usage.get("cached_tokens", 0) for d, first in zip(dones, prompt_counted) if first)
    completion = sum(d.usage["completion_tokens"] for d in dones)
    reasoning = sum(d.usage["reasoning_tokens"] for d in dones)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "reasoning_tokens": reasoning, "cached_tokens": cached}


def logprob_entry(engine: BatchEngine, data: dict) -> dict:
    def one(token: int, lp: float) -> dict:
        raw = engine.token_bytes(token)
        return {"token": raw.decode("utf-8", "replace"), "logprob": lp, "bytes": list(raw)}

    entry = one(data["token"], data["logprob"])
    entry["top_logprobs"] = [one(t, lp) for t, lp in data["top"]]
    return entry
