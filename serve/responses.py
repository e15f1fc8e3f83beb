"""/v1/responses: OpenAI's Responses API (what LangChain's ChatOpenAI and newer SDK code call).

The thinking comes back as a ``reasoning`` output item whose content is ``reasoning_text`` (the full
text; this server writes no summaries), before a ``message`` item with the answer as ``output_text``;
``usage.output_tokens_details.reasoning_tokens`` counts the thinking. Streaming sends the API's
semantic events (``response.created`` ... ``response.reasoning_text.delta`` ...
``response.output_text.delta`` ... ``response.completed``), each with its ``sequence_number``.
Nothing is stored: ``previous_response_id`` is refused; send the conversation in ``input`` (reasoning
items sent back are accepted and dropped, like earlier turns' thinking in Chat Completions)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal, Optional, Union

from fastapi import FastAPI, Request
from pydantic import Field, StrictBool, StrictInt, StrictStr
from typing_extensions import Annotated

from .errors import APIError, error_body
from .protocol import EFFORTS, MAX_INT, MAX_TOP_LOGPROBS, SEED, Harmless, Number, Strict
from .runtime import Knobs, Submission, collect, engine_request, logprob_entry, parse
from .sse import sse_response

LOGPROBS_INCLUDE = "message.output_text.logprobs"


class ReasoningConfig(Strict):
    effort: Optional[Literal[EFFORTS]] = None
    summary: Optional[Literal["auto", "concise", "detailed"]] = None  # the full text is always returned
    generate_summary: Optional[Literal["auto", "concise", "detailed"]] = None


class TextFormat(Strict):
    type: Literal["text", "json_object", "json_schema"]
    name: Optional[StrictStr] = None
    description: Optional[StrictStr] = None
    schema_: Optional[dict[str, Any]] = Field(default=None, alias="schema")
    strict: Optional[StrictBool] = None


class TextConfig(Strict):
    format: Optional[TextFormat] = None
    verbosity: Optional[Literal["medium"]] = None  # only the default: the model's length is its own


class StreamOptions(Strict):
    include_obfuscation: Optional[StrictBool] = None


class ResponsesRequest(Harmless):
    model: Optional[StrictStr] = None
    input: Union[Annotated[StrictStr, Field(min_length=1)], Annotated[list[dict[str, Any]], Field(min_length=1)]]
    instructions: Optional[StrictStr] = None
    max_output_tokens: Optional[Annotated[StrictInt, Field(ge=1, le=MAX_INT)]] = None
    temperature: Optional[Annotated[Number, Field(ge=0, le=2)]] = None
    top_p: Optional[Annotated[Number, Field(gt=0, le=1)]] = None
    top_k: Optional[Annotated[StrictInt, Field(ge=0, le=MAX_INT)]] = None
    seed: Optional[SEED] = None
    stream: StrictBool = False
    stream_options: Optional[StreamOptions] = None
    reasoning: Optional[ReasoningConfig] = None
    text: Optional[TextConfig] = None
    top_logprobs: Optional[Annotated[StrictInt, Field(ge=0, le=MAX_TOP_LOGPROBS)]] = None
    include: Optional[list[Literal["message.output_text.logprobs"]]] = None
    truncation: Optional[Literal["disabled"]] = None
    background: Optional[Literal[False]] = None
    thinking_budget_tokens: Optional[Annotated[StrictInt, Field(ge=0, le=MAX_INT)]] = None


def input_messages(req: ResponsesRequest) -> list[dict]:
    """The conversation as chat messages; a clear 400 for what this server cannot take."""
    messages = [{"role": "system", "content": req.instructions}] if req.instructions else []
    if isinstance(req.input, str):
        return messages + [{"role": "user", "content": req.input}]
    for i, item in enumerate(req.input):
        where = f"input.{i}"
        kind = item.get("type", "message")
        if kind == "reasoning":
            continue  # earlier turns' thinking is never sent back to the model
        if kind != "message":
            raise APIError(400, f"{where}: items of type {kind!r} are not supported (messages and reasoning only)",
                           param=where)
        role = item.get("role")
        if role not in ("user", "system", "developer", "assistant"):
            raise APIError(400, f"{where}.role: expected user, system, developer or assistant, got {role!r}", param=where)
        content = item.get("content")
        if isinstance(content, str):
            text = content
        elif isinstance(content, list):
            parts = []
            for j, part in enumerate(content):
                ptype = part.get("type") if isinstance(part, dict) else None
                if ptype not in ("input_text", "output_text", "text") or not isinstance(part.get("text"), str):
                    raise APIError(400, f"{where}.content.{j}: only text parts (input_text, output_text) are supported",
                                   param=f"{where}.content")
                parts.append(part["text"])
            text = "".join(parts)
        else:
            raise APIError(400, f"{where}.content: expected text or a list of text parts", param=f"{where}.content")
        messages.append({"role": "system" if role == "developer" else role, "content": text})
    if not any(m["role"] == "user" for m in messages):
        raise APIError(400, "input needs at least one user message", param="input")
    return messages


def _format_dict(req: ResponsesRequest) -> Optional[dict]:
    fmt = req.text.format if req.text else None
    if fmt is None:
        return None
    if fmt.type == "json_schema":
        if fmt.schema_ is None:
            raise APIError(400, "text.format: type json_schema needs a schema", param="text.format")
        return {"type": "json_schema", "json_schema": {"name": fmt.name or "response", "schema": fmt.schema_}}
    return {"type": fmt.type}


def register(app: FastAPI, runtime, metrics, model_id: str, sampling, effort_budgets: dict) -> None:
    @app.post("/v1/responses")
    async def responses(request: Request):
        req = await parse(request, ResponsesRequest)
        engine = runtime.engine_or_503()
        effort = req.reasoning.effort if req.reasoning else None
        prompt, opened = runtime.formatter.prompt(input_messages(req), thinking=effort != "none")
        budget = req.thinking_budget_tokens
        if budget is None and effort in ("low", "medium", "high"):
            budget = effort_budgets[effort]
        elif budget is None and effort == "minimal":
            budget = 0
        want_logprobs = bool(req.include and LOGPROBS_INCLUDE in req.include) or req.top_logprobs is not None
        knobs = Knobs(max_tokens=req.max_output_tokens, temperature=req.temperature, top_p=req.top_p, top_k=req.top_k,
                      seed=req.seed, thinking_budget=budget, logprobs=(req.top_logprobs or 0) if want_logprobs else None,
                      response_format=_format_dict(req))
        gen = engine_request(engine, engine.tokenize(prompt, special=True), knobs, sampling, thinking=opened,
                             prompt_param="input")
        sub = Submission(engine, [gen])
        rid, created = f"resp_{gen.id}", time.time()
        rs_id, msg_id = f"rs_{uuid.uuid4().hex[:24]}", f"msg_{uuid.uuid4().hex[:24]}"

        def envelope(status: str, output: list, usage: Optional[dict] = None, finish: Optional[str] = None) -> dict:
            body = {"id": rid, "object": "response", "created_at": created, "model": model_id, "status": status,
                    "output": output, "parallel_tool_calls": False, "tool_choice": "none", "tools": [],
                    "temperature": gen.temperature, "top_p": gen.top_p, "max_output_tokens": req.max_output_tokens,
                    "instructions": req.instructions, "metadata": req.metadata or {}, "error": None,
                    "incomplete_details": {"reason": "max_output_tokens"} if finish == "length" else None,
                    "reasoning": {"effort": effort, "summary": None},
                    "text": {"format": {"type": (req.text.format.type if req.text and req.text.format else "text")}},
                    "top_logprobs": req.top_logprobs, "truncation": "disabled", "usage": None}
            if status != "in_progress":
                body["completed_at"] = time.time()
            if usage is not None:
                body["usage"] = {"input_tokens": usage["prompt_tokens"],
                                 "input_tokens_details": {"cached_tokens": usage.get("cached_tokens", 0)},
                                 "output_tokens": usage["completion_tokens"],
                                 "output_tokens_details": {"reasoning_tokens": usage["reasoning_tokens"]},
                                 "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
            return body

        def reasoning_item(text: str, status: str = "completed") -> dict:
            content = [{"type": "reasoning_text", "text": text}] if status == "completed" else []
            return {"type": "reasoning", "id": rs_id, "summary": [], "content": content, "status": status}

        def output_text(text: str, logprobs: list) -> dict:
            return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}

        def message_item(text: str, logprobs: list, status: str = "completed") -> dict:
            content = [output_text(text, logprobs)] if status == "completed" else []
            return {"type": "message", "id": msg_id, "status": status, "role": "assistant", "content": content}

        def final_status(finish: str) -> str:
            return "incomplete" if finish == "length" else "completed"

        if not req.stream:
            result = (await collect(request, sub, metrics))[0]
            answer_lp = [logprob_entry(engine, d) for d in result.logprobs if d["part"] == "answer"]
            output = [reasoning_item(result.reasoning)] if result.reasoning else []
            output.append(message_item(result.answer, answer_lp))
            finish = result.done.finish_reason
            return envelope(final_status(finish), output, result.done.usage, finish)

        async def stream():
            seq = {"n": 0}

            def event(kind: str, **fields) -> str:
                body = {"type": kind, "sequence_number": seq["n"], **fields}
                seq["n"] += 1
                return f"event: {kind}\ndata: {json.dumps(body, ensure_ascii=False)}\n\n"

            output: list[dict] = []
            reasoning, answer, answer_lp = "", "", []
            state = "none"  # none -> reasoning -> message

            def close_reasoning():
                item = reasoning_item(reasoning)
                output.append(item)
                index = len(output) - 1
                return [event("response.reasoning_text.done", item_id=rs_id, output_index=index, content_index=0,
                              text=reasoning),
                        event("response.content_part.done", item_id=rs_id, output_index=index, content_index=0,
                              part={"type": "reasoning_text", "text": reasoning}),
                        event("response.output_item.done", output_index=index, item=item)]

            def open_message():
                index = len(output)
                return [event("response.output_item.added", output_index=index, item=message_item("", [], "in_progress")),
                        event("response.content_part.added", item_id=msg_id, output_index=index, content_index=0,
                              part=output_text("", []))]

            yield event("response.created", response=envelope("in_progress", []))
            yield event("response.in_progress", response=envelope("in_progress", []))
            pending_lp: list[dict] = []
            while sub.remaining:
                _, ev = await sub.next()
                if ev.kind == "logprob":
                    if ev.data["part"] == "answer":
                        pending_lp.append(logprob_entry(engine, ev.data))
                    continue
                if ev.kind == "reasoning" and state == "none":
                    state = "reasoning"
                    index = len(output)
                    yield event("response.output_item.added", output_index=index,
                                item=reasoning_item("", "in_progress"))
                    yield event("response.content_part.added", item_id=rs_id, output_index=index, content_index=0,
                                part={"type": "reasoning_text", "text": ""})
                if ev.kind == "reasoning" and state == "reasoning":
                    reasoning += ev.text
                    yield event("response.reasoning_text.delta", item_id=rs_id, output_index=len(output),
                                content_index=0, delta=ev.text)
                elif ev.kind == "answer" or (ev.kind == "done" and ev.finish_reason != "error"):
                    if state == "reasoning":
                        for e in close_reasoning():
                            yield e
                    if state != "message":
                        state = "message"
                        for e in open_message():
                            yield e
                    if ev.kind == "answer":
                        answer += ev.text
                        answer_lp += pending_lp
                        yield event("response.output_text.delta", item_id=msg_id, output_index=len(output),
                                    content_index=0, delta=ev.text, logprobs=pending_lp)
                        pending_lp = []
                        continue
                    metrics.record(ev.usage)
                    answer_lp += pending_lp
                    index = len(output)
                    item = message_item(answer, answer_lp)
                    output.append(item)
                    yield event("response.output_text.done", item_id=msg_id, output_index=index, content_index=0,
                                text=answer, logprobs=answer_lp)
                    yield event("response.content_part.done", item_id=msg_id, output_index=index, content_index=0,
                                part=output_text(answer, answer_lp))
                    yield event("response.output_item.done", output_index=index, item=item)
                    status = final_status(ev.finish_reason)
                    yield event(f"response.{status}",
                                response=envelope(status, output, ev.usage, ev.finish_reason))
                elif ev.kind == "done":  # an error
                    failed = envelope("failed", output)
                    failed["error"] = {"code": "server_error", "message": f"generation failed: {ev.usage.get('error')}"}
                    yield event("response.failed", response=failed)
                    yield event("error", **error_body(f"generation failed: {ev.usage.get('error')}", "server_error")["error"])

        return sse_response(stream(), sub)
