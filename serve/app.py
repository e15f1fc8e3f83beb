"""The OpenAI-compatible HTTP layer: FastAPI over :class:`~r1_distill.serve.engine.BatchEngine`.

Endpoints: /v1/chat/completions and /v1/completions (:mod:`.openai_chat`), /v1/responses
(:mod:`.responses`), /v1/models, /health (503 while the model loads or the engine restarts),
/metrics (Prometheus text). Every error is OpenAI's shape: {"error": {"message", "type", "param",
"code"}}. CORS is off unless origins are given (``cors_origins``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from r1_distill.errors import UserError
from r1_distill.registry import load_registry

from . import openai_chat, responses
from .engine import BatchEngine
from .errors import APIError, error_response
from .metrics import Metrics
from .middleware import Guard
from .protocol import TokenizeRequest
from .runtime import MAX_BODY_BYTES, Runtime, parse

CORS_ENV = "R1_DISTILL_CORS_ORIGINS"


@dataclass
class ServerConfig:
    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: Optional[str] = None
    parallel: int = 4
    ctx: int = 4096
    threads: Optional[int] = None  # default: the machine's physical cores
    max_queue: int = 64
    model_name: Optional[str] = None
    models_file: Optional[str] = None
    cors_origins: list[str] = field(default_factory=list)  # e.g. ["*"] or ["http://localhost:3000"]
    exit_on_engine_failure: bool = False  # the CLI exits (for its supervisor) if a dead engine cannot restart


def create_app(config: ServerConfig, engine_factory: Callable[[], BatchEngine] | None = None) -> FastAPI:
    registry = load_registry(config.models_file)
    sampling = registry.defaults.sampling
    effort_budgets = registry.defaults.reasoning_effort_budgets
    metrics = Metrics()
    model_id = config.model_name or Path(config.model).stem

    def factory() -> BatchEngine:
        if engine_factory is not None:
            return engine_factory()
        return BatchEngine(config.model, parallel=config.parallel, ctx=config.ctx, threads=config.threads,
                           max_queue=config.max_queue)

    runtime = Runtime(factory, metrics, exit_on_failure=config.exit_on_engine_failure)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        runtime.start()
        try:
            yield
        finally:
            runtime.close()

    app = FastAPI(title="r1-distill", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.add_middleware(Guard, api_key=config.api_key, metrics=metrics, max_body=MAX_BODY_BYTES)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["GET", "POST", "OPTIONS"],
                           allow_headers=["*"], allow_credentials=False)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return error_response(exc.status, exc.message, exc.type, exc.param, exc.code, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = {404: f"no such endpoint: {request.method} {request.url.path}",
                   405: f"method {request.method} not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return error_response(exc.status_code, message, code="not_found" if exc.status_code == 404 else None)

    openai_chat.register(app, runtime, metrics, model_id, sampling, effort_budgets)
    responses.register(app, runtime, metrics, model_id, sampling, effort_budgets)

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model_id, "object": "model", "created": 0, "owned_by": "r1-distill"}]}

    @app.post("/tokenize")
    async def tokenize(request: Request):
        req = await parse(request, TokenizeRequest)
        engine = runtime.engine_or_503()
        tokens = engine.tokenize(req.text, special=True)
        return {"tokens": tokens, "count": len(tokens), "max_model_len": engine.ctx_per_slot}

    @app.get("/health")
    async def health():
        status, body = runtime.status()
        if status == 200:
            body = {"status": "ok", "model": model_id, **{k: v for k, v in body.items() if k != "status"}}
        return JSONResponse(body, status_code=status)

    @app.get("/metrics")
    async def prometheus():
        return PlainTextResponse(metrics.render(runtime.engine), media_type="text/plain; version=0.0.4")

    app.state.r1 = runtime
    return app


def cors_from_env() -> list[str]:
    return [o.strip() for o in os.environ.get(CORS_ENV, "").split(",") if o.strip()]


def serve(config: ServerConfig) -> None:
    import uvicorn

    path = Path(config.model)
    if not path.is_file():
        raise UserError(f"model file {config.model} does not exist: pass a .gguf file written by `r1-distill export --gguf`")
    if path.suffix != ".gguf":
        raise UserError(f"{config.model} is not a .gguf file: export the model first (r1-distill export --gguf)")
    if config.parallel < 1 or config.ctx < 64:
        raise UserError("--parallel must be at least 1 and --ctx at least 64")
    if config.threads is not None and config.threads < 1:
        raise UserError("--threads must be at least 1")
    if not config.cors_origins:
        config.cors_origins = cors_from_env()
    config.exit_on_engine_failure = True
    app = create_app(config)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", timeout_graceful_shutdown=3)
