"""The HTTP routes (vLLM's ``api_router``): each parses its body and hands it to the serving class of its
API, kept on ``app.state`` by :func:`~r1_distill.serve.app.create_app`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from .parsing import parse
from .protocol import ChatCompletionRequest, CompletionRequest, ResponsesRequest, TokenizeRequest
from .runtime import Runtime
from .serving_chat import OpenAIServingChat
from .serving_completion import OpenAIServingCompletion
from .serving_responses import OpenAIServingResponses

router = APIRouter()


def chat(request: Request) -> OpenAIServingChat:
    return request.app.state.openai_serving_chat


def completion(request: Request) -> OpenAIServingCompletion:
    return request.app.state.openai_serving_completion


def responses(request: Request) -> OpenAIServingResponses:
    return request.app.state.openai_serving_responses


def runtime(request: Request) -> Runtime:
    return request.app.state.r1


@router.post("/v1/chat/completions")
async def create_chat_completion(request: Request):
    req = await parse(request, ChatCompletionRequest)
    return await chat(request).create_chat_completion(req, request)


@router.post("/v1/completions")
async def create_completion(request: Request):
    req = await parse(request, CompletionRequest)
    return await completion(request).create_completion(req, request)


@router.post("/v1/responses")
async def create_response(request: Request):
    req = await parse(request, ResponsesRequest)
    return await responses(request).create_response(req, request)


@router.get("/v1/models")
async def show_models(request: Request):
    model_id = request.app.state.model_id
    return {"object": "list", "data": [{"id": model_id, "object": "model", "created": 0, "owned_by": "r1-distill"}]}


@router.post("/tokenize")
async def tokenize(request: Request):
    req = await parse(request, TokenizeRequest)
    engine = runtime(request).engine_or_503()
    tokens = engine.tokenize(req.text, special=True)
    return {"tokens": tokens, "count": len(tokens), "max_model_len": engine.ctx_per_slot}


@router.get("/health")
async def health(request: Request):
    status, body = runtime(request).status()
    if status == 200:
        body = {"status": "ok", "model": request.app.state.model_id, **{k: v for k, v in body.items() if k != "status"}}
    return JSONResponse(body, status_code=status)


@router.get("/metrics")
async def prometheus(request: Request):
    text = request.app.state.metrics.render(runtime(request).engine)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")
