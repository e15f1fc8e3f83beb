"""The OpenAI-compatible HTTP layer: FastAPI over :class:`~r1_distill.serve.engine.BatchEngine`.

Endpoints: /v1/chat/completions (streaming and not), /v1/completions, /v1/models, /health (503 while
the model loads), /metrics (Prometheus text). The thinking comes back apart, in
`message.reasoning_content` / `delta.reasoning_content`, as DeepSeek's API and llama-server do.
Every error is OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from r1_distill.errors import UserError
from r1_distill.registry import load_registry, read_template

from .engine import BatchEngine, Event, GenerationRequest, QueueFull
from .protocol import ChatCompletionRequest, CompletionRequest

MAX_BODY_BYTES = 4 << 20


@dataclass
class ServerConfig:
    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: Optional[str] = None
    parallel: int = 4
    ctx: int = 4096
    threads: Optional[int] = None
    max_queue: int = 64
    model_name: Optional[str] = None
    models_file: Optional[str] = None


class APIError(Exception):
    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code, self.headers = status, message, type_, param, code, headers


def error_response(status: int, message: str, type_: str = "invalid_request_error", param=None, code=None, headers=None):
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


class Metrics:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.counters = {"prompt_tokens_total": 0, "completion_tokens_total": 0, "reasoning_tokens_total": 0,
                         "request_duration_seconds_sum": 0.0, "request_duration_seconds_count": 0,
                         "time_to_first_token_seconds_sum": 0.0}

    def count(self, path: str, status: int) -> None:
        with self.lock:
            self.requests[(path, status)] = self.requests.get((path, status), 0) + 1

    def record(self, usage: dict) -> None:
        with self.lock:
            self.counters["prompt_tokens_total"] += usage.get("prompt_tokens", 0)
            self.counters["completion_tokens_total"] += usage.get("completion_tokens", 0)
            self.counters["reasoning_tokens_total"] += usage.get("reasoning_tokens", 0)
            self.counters["request_duration_seconds_sum"] += usage.get("duration_s", 0.0)
            self.counters["request_duration_seconds_count"] += 1
            self.counters["time_to_first_token_seconds_sum"] += usage.get("time_to_first_token_s", 0.0)

    def render(self, engine: BatchEngine | None) -> str:
        lines = ["# TYPE r1_distill_requests_total counter"]
        with self.lock:
            for (path, status), n in sorted(self.requests.items()):
                lines.append(f'r1_distill_requests_total{{path="{path}",status="{status}"}} {n}')
            for name, value in self.counters.items():
                kind = "counter" if name.endswith(("_total", "_sum", "_count")) else "gauge"
                lines += [f"# TYPE r1_distill_{name} {kind}", f"r1_distill_{name} {value}"]
        gauges = {"queue_length": engine.queue_length() if engine else 0,
                  "slots_busy": engine.busy_slots() if engine else 0,
                  "slots_total": engine.parallel if engine else 0,
                  "requests_cancelled_total": engine.stats["cancelled"] if engine else 0,
                  "decode_calls_total": engine.stats["decode_calls"] if engine else 0}
        for name, value in gauges.items():
            lines += [f"# TYPE r1_distill_{name} {'counter' if name.endswith('_total') else 'gauge'}",
                      f"r1_distill_{name} {value}"]
        return "\n".join(lines) + "\n"


class ChatFormatter:
    """Renders messages with the GGUF's own chat template (the shipped R1 one when it has none)."""

    def __init__(self, engine: BatchEngine):
        meta = engine.metadata
        self.template_text = meta.get("tokenizer.chat_template") or read_template("r1-distill")
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise_template_error
        self.template = env.from_string(self.template_text)

        def token(key: str) -> str:
            value = meta.get(key)
            return engine.token_text(int(value)) if value not in (None, "") else ""

        self.bos, self.eos = token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id")

    def render(self, messages: list[dict], **kwargs) -> str:
        return self.template.render(messages=messages, bos_token=self.bos, eos_token=self.eos,
                                    add_generation_prompt=True, **kwargs)


def _raise_template_error(message: str):
    raise APIError(400, f"the chat template rejected the messages: {message}")


def create_app(config: ServerConfig, engine_factory: Callable[[], BatchEngine] | None = None) -> FastAPI:
    registry = load_registry(config.models_file)
    sampling = registry.defaults.sampling
    effort_budgets = registry.defaults.reasoning_effort_budgets
    app = FastAPI(title="r1-distill", docs_url=None, redoc_url=None)
    metrics = Metrics()
    state: dict = {"engine": None, "formatter": None, "error": None}
    model_id = config.model_name or Path(config.model).stem

    def load() -> None:
        try:
            engine = engine_factory() if engine_factory else BatchEngine(
                config.model, parallel=config.parallel, ctx=config.ctx, threads=config.threads, max_queue=config.max_queue)
            state["formatter"] = ChatFormatter(engine)
            state["engine"] = engine
        except Exception as exc:  # reported by /health and every request
            state["error"] = str(exc)

    @app.on_event("startup")
    async def _start() -> None:
        threading.Thread(target=load, name="r1-distill-load", daemon=True).start()

    @app.on_event("shutdown")
    async def _stop() -> None:
        if state["engine"] is not None:
            state["engine"].close()

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        path = request.url.path
        if config.api_key and path.startswith("/v1/"):
            if request.headers.get("authorization", "") != f"Bearer {config.api_key}":
                metrics.count(path, 401)
                return error_response(401, "invalid or missing API key: send 'Authorization: Bearer <key>'",
                                      code="invalid_api_key")
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            metrics.count(path, 413)
            return error_response(413, f"request body over {MAX_BODY_BYTES} bytes")
        try:
            response = await call_next(request)
        except Exception as exc:  # a bug: still OpenAI's shape, and the server stays up
            response = error_response(500, f"internal error: {type(exc).__name__}", type_="server_error")
        metrics.count(path, response.status_code)
        return response

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return error_response(exc.status, exc.message, exc.type, exc.param, exc.code, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = {404: f"no such endpoint: {request.method} {request.url.path}",
                   405: f"method {request.method} not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return error_response(exc.status_code, message, code="not_found" if exc.status_code == 404 else None)

    def engine_or_503() -> BatchEngine:
        if state["error"]:
            raise APIError(503, f"the model failed to load: {state['error']}", type_="server_error")
        if state["engine"] is None:
            raise APIError(503, "the model is still loading", type_="server_error", headers={"Retry-After": "2"})
        return state["engine"]

    async def parse(request: Request, model_cls):
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise APIError(413, f"request body over {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise APIError(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise APIError(400, f"the body must be a JSON object, got {type(body).__name__}")
        try:
            return model_cls.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(p) for p in first["loc"])
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
            raise APIError(400, f"invalid request: {problems}", param=param) from None

    def generation(req, prompt: str, engine: BatchEngine, *, chat: bool) -> GenerationRequest:
        tokens = engine.tokenize(prompt, special=True)
        if len(tokens) >= engine.ctx_per_slot:
            raise APIError(400, f"the prompt is {len(tokens)} tokens; this server's context is {engine.ctx_per_slot} "
                                "tokens: shorten the conversation or restart the server with a larger --ctx",
                           param="messages" if chat else "prompt", code="context_length_exceeded")
        max_tokens = getattr(req, "max_completion_tokens", None) or req.max_tokens
        if max_tokens is not None and max_tokens > engine.ctx_per_slot:
            raise APIError(400, f"max_tokens {max_tokens} exceeds the context of {engine.ctx_per_slot} tokens",
                           param="max_tokens")
        room = engine.ctx_per_slot - len(tokens)
        max_tokens = min(max_tokens or min(sampling.max_new_tokens, room), room)
        budget = None
        if chat:
            budget = req.thinking_budget_tokens
            if budget is None and req.reasoning_effort:
                budget = effort_budgets[req.reasoning_effort]
        return GenerationRequest(
            prompt_tokens=tokens, max_tokens=max_tokens,
            temperature=sampling.temperature if req.temperature is None else float(req.temperature),
            top_p=sampling.top_p if req.top_p is None else float(req.top_p), top_k=req.top_k or 0,
            seed=req.seed, stop=req.stop or [], thinking=chat and prompt.rstrip().endswith("<think>"),
            thinking_budget=budget, wait_forcing=req.budget_forcing_waits if chat else 0,
        )

    def chat_prompt(req: ChatCompletionRequest) -> str:
        messages = []
        for m in req.messages:
            role = "system" if m.role == "developer" else m.role
            # earlier turns' thinking is never sent back to the model (DeepSeek's advice)
            messages.append({"role": role, "content": m.text()})
        try:
            return state["formatter"].render(messages, **(req.chat_template_kwargs or {}))
        except APIError:
            raise
        except Exception as exc:
            raise APIError(400, f"the chat template failed on these messages: {exc}") from None

    def submit(engine: BatchEngine, gen: GenerationRequest):
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        try:
            cancel = engine.submit(gen, lambda ev: loop.call_soon_threadsafe(events.put_nowait, ev))
        except QueueFull:
            raise APIError(503, "the server is busy: every slot is taken and the queue is full; retry shortly",
                           type_="server_error", code="queue_full", headers={"Retry-After": "1"}) from None
        except UserError as exc:
            raise APIError(400, str(exc)) from None
        return events, cancel

    def usage_block(usage: dict) -> dict:
        return {"prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"],
                "total_tokens": usage["total_tokens"],
                "completion_tokens_details": {"reasoning_tokens": usage["reasoning_tokens"]}}

    async def collect(request: Request, events: asyncio.Queue, cancel) -> tuple[dict[str, str], Event]:
        parts = {"reasoning": "", "answer": "", "raw": ""}
        try:
            while True:
                try:
                    ev = await asyncio.wait_for(events.get(), timeout=0.5)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        cancel()
                        raise APIError(499, "client disconnected")
                    continue
                if ev.kind == "done":
                    return parts, ev
                parts[ev.kind] += ev.text
        except asyncio.CancelledError:
            cancel()
            raise

    def finished(ev: Event) -> None:
        if ev.finish_reason == "error":
            raise APIError(500, f"generation failed: {ev.usage.get('error')}", type_="server_error")
        metrics.record(ev.usage)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        req = await parse(request, ChatCompletionRequest)
        engine = engine_or_503()
        gen = generation(req, chat_prompt(req), engine, chat=True)
        raw_format = req.reasoning_format == "none"
        events, cancel = submit(engine, gen)
        created, cid = int(time.time()), f"chatcmpl-{gen.id}"
        if not req.stream:
            parts, done = await collect(request, events, cancel)
            finished(done)
            message = {"role": "assistant", "content": parts["raw"] if raw_format else parts["answer"]}
            if not raw_format:
                message["reasoning_content"] = parts["reasoning"]
            return {"id": cid, "object": "chat.completion", "created": created, "model": model_id,
                    "choices": [{"index": 0, "message": message, "finish_reason": done.finish_reason}],
                    "usage": usage_block(done.usage)}

        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        def chunk(delta: dict, finish=None) -> str:
            body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model_id,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        async def stream():
            completed = False
            try:
                yield chunk({"role": "assistant", "content": ""})
                while True:
                    ev = await events.get()
                    if ev.kind == "done":
                        if ev.finish_reason == "error":
                            err = {"error": {"message": f"generation failed: {ev.usage.get('error')}",
                                             "type": "server_error", "param": None, "code": None}}
                            yield f"data: {json.dumps(err)}\n\n"
                            break
                        metrics.record(ev.usage)
                        yield chunk({}, ev.finish_reason)
                        if include_usage:
                            body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model_id,
                                    "choices": [], "usage": usage_block(ev.usage)}
                            yield f"data: {json.dumps(body)}\n\n"
                        break
                    if raw_format and ev.kind == "raw":
                        yield chunk({"content": ev.text})
                    elif not raw_format and ev.kind == "reasoning":
                        yield chunk({"reasoning_content": ev.text})
                    elif not raw_format and ev.kind == "answer":
                        yield chunk({"content": ev.text})
                yield "data: [DONE]\n\n"
                completed = True
            finally:
                if not completed:  # the client went away: free the slot now
                    cancel()

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/v1/completions")
    async def completions(request: Request):
        req = await parse(request, CompletionRequest)
        engine = engine_or_503()
        gen = generation(req, req.prompt_text(), engine, chat=False)
        events, cancel = submit(engine, gen)
        created, cid = int(time.time()), f"cmpl-{gen.id}"
        if not req.stream:
            parts, done = await collect(request, events, cancel)
            finished(done)
            return {"id": cid, "object": "text_completion", "created": created, "model": model_id,
                    "choices": [{"index": 0, "text": parts["raw"], "finish_reason": done.finish_reason, "logprobs": None}],
                    "usage": usage_block(done.usage)}

        async def stream():
            completed = False
            try:
                while True:
                    ev = await events.get()
                    if ev.kind in ("raw", "done"):
                        finish = ev.finish_reason if ev.kind == "done" else None
                        body = {"id": cid, "object": "text_completion", "created": created, "model": model_id,
                                "choices": [{"index": 0, "text": ev.text, "finish_reason": finish, "logprobs": None}]}
                        yield f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
                        if ev.kind == "done":
                            if ev.finish_reason != "error":
                                metrics.record(ev.usage)
                            break
                yield "data: [DONE]\n\n"
                completed = True
            finally:
                if not completed:
                    cancel()

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model_id, "object": "model", "created": 0, "owned_by": "r1-distill"}]}

    @app.get("/health")
    async def health():
        if state["error"]:
            return JSONResponse({"status": "error", "error": state["error"]}, status_code=503)
        if state["engine"] is None:
            return JSONResponse({"status": "loading"}, status_code=503)
        engine = state["engine"]
        return {"status": "ok", "model": model_id, "slots_busy": engine.busy_slots(), "slots_total": engine.parallel,
                "queue_length": engine.queue_length()}

    @app.get("/metrics")
    async def prometheus():
        return PlainTextResponse(metrics.render(state["engine"]), media_type="text/plain; version=0.0.4")

    app.state.r1 = state
    return app


def serve(config: ServerConfig) -> None:
    import uvicorn

    path = Path(config.model)
    if not path.is_file():
        raise UserError(f"model file {config.model} does not exist: pass a .gguf file written by `r1-distill export --gguf`")
    if path.suffix != ".gguf":
        raise UserError(f"{config.model} is not a .gguf file: export the model first (r1-distill export --gguf)")
    if config.parallel < 1 or config.ctx < 64:
        raise UserError("--parallel must be at least 1 and --ctx at least 64")
    app = create_app(config)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", timeout_graceful_shutdown=3)
