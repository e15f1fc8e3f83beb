"""The OpenAI-compatible HTTP layer: FastAPI over :class:`~r1_distill.llama.engine.BatchEngine`.

Endpoints (:mod:`.api_router`): /v1/chat/completions (:mod:`.serving_chat`), /v1/completions
(:mod:`.serving_completion`), /v1/responses (:mod:`.serving_responses`), /v1/models, /tokenize, /health
(503 while the model loads or the engine restarts), /metrics (Prometheus text). Every error is OpenAI's
shape: {"error": {"message", "type", "param", "code"}}. CORS is off unless origins are given
(``cors_origins``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from r1_distill.errors import UserError
from r1_distill.llama.engine import BatchEngine, Speculation
from r1_distill.llama.speculation import check_draft_vocabulary
from r1_distill.registry import load_registry

from .api_router import router
from .config import CORS_ENV, ServerConfig
from .errors import APIError, error_response
from .metrics import Metrics
from .middleware import Guard
from .parsing import MAX_BODY_BYTES
from .runtime import Runtime
from .serving_chat import OpenAIServingChat
from .serving_completion import OpenAIServingCompletion
from .serving_responses import OpenAIServingResponses

__all__ = ["ServerConfig", "create_app", "serve", "cors_from_env"]


def _engine_factory(config: ServerConfig) -> Callable[[], BatchEngine]:
    def factory() -> BatchEngine:
        return BatchEngine(config.model, parallel=config.parallel, ctx=config.ctx, threads=config.threads,
                           max_queue=config.max_queue, speculation=speculation(config))

    return factory


def speculation(config: ServerConfig) -> Speculation:
    return Speculation(draft_model=config.draft, lookup=config.lookup, draft_max=config.draft_max,
                       draft_p_min=config.draft_p_min)


def check_speculation(config: ServerConfig) -> None:
    """--draft/--lookup refused before the server starts: one line naming what is wrong."""
    speculation(config).check()
    if config.draft:
        draft = Path(config.draft)
        if not draft.is_file() or draft.suffix != ".gguf":
            raise UserError(f"--draft {config.draft}: not a .gguf file (a smaller model exported with `r1-distill export --gguf`)")
        check_draft_vocabulary(config.model, config.draft)


def _lifespan(runtime: Runtime):
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        runtime.start()
        try:
            yield
        finally:
            runtime.close()

    return lifespan


async def _api_error(request: Request, exc: APIError):
    return error_response(exc.status, exc.message, exc.type, exc.param, exc.code, exc.headers)


async def _http_error(request: Request, exc: StarletteHTTPException):
    message = {404: f"no such endpoint: {request.method} {request.url.path}",
               405: f"method {request.method} not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, message, code="not_found" if exc.status_code == 404 else None)


def create_app(config: ServerConfig, engine_factory: Callable[[], BatchEngine] | None = None) -> FastAPI:
    registry = load_registry(config.models_file)
    metrics = Metrics()
    model_id = config.model_name or Path(config.model).stem
    runtime = Runtime(engine_factory or _engine_factory(config), metrics, exit_on_failure=config.exit_on_engine_failure)
    app = FastAPI(title="r1-distill", docs_url=None, redoc_url=None, openapi_url=None, lifespan=_lifespan(runtime))
    app.add_middleware(Guard, api_key=config.api_key, metrics=metrics, max_body=MAX_BODY_BYTES)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["GET", "POST", "OPTIONS"],
                           allow_headers=["*"], allow_credentials=False)
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.include_router(router)
    serving = (runtime, metrics, model_id, registry.defaults.sampling, registry.defaults.reasoning_effort_budgets)
    app.state.openai_serving_chat = OpenAIServingChat(*serving)
    app.state.openai_serving_completion = OpenAIServingCompletion(*serving)
    app.state.openai_serving_responses = OpenAIServingResponses(*serving)
    app.state.r1, app.state.metrics, app.state.model_id = runtime, metrics, model_id
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
    check_speculation(config)
    if not config.cors_origins:
        config.cors_origins = cors_from_env()
    config.exit_on_engine_failure = True
    app = create_app(config)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", timeout_graceful_shutdown=3)
