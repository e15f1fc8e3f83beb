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
from typing import Optional

from fastapi import Request

from r1_distill.llama.engine import BatchEngine, Event, GenerationRequest

from .errors import APIError, error_body
from .protocol import ResponsesRequest
from .sampling_options import SamplingOptions
from .serving import OpenAIServing, logprob_entry
from .sse import sse_response
from .submission import Submission, collect

LOGPROBS_INCLUDE = "message.output_text.logprobs"


def _message_text(item: dict, where: str) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise APIError(400, f"{where}.content: expected text or a list of text parts", param=f"{where}.content")
    parts = []
    for j, part in enumerate(content):
        ptype = part.get("type") if isinstance(part, dict) else None
        if ptype not in ("input_text", "output_text", "text") or not isinstance(part.get("text"), str):
            raise APIError(400, f"{where}.content.{j}: only text parts (input_text, output_text) are supported",
                           param=f"{where}.content")
        parts.append(part["text"])
    return "".join(parts)


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
        text = _message_text(item, where)
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


def final_status(finish: str) -> str:
    return "incomplete" if finish == "length" else "completed"


def output_text(text: str, logprobs: list) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}


def _usage(usage: dict) -> dict:
    return {"input_tokens": usage["prompt_tokens"], "input_tokens_details": {"cached_tokens": usage.get("cached_tokens", 0)},
            "output_tokens": usage["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": usage["reasoning_tokens"]},
            "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}


class ResponseShape:
    """One request's response object and output items (their ids fixed for the request)."""

    def __init__(self, req: ResponsesRequest, gen: GenerationRequest, model_id: str, effort: Optional[str]):
        self.req, self.gen, self.model_id, self.effort = req, gen, model_id, effort
        self.id, self.created = f"resp_{gen.id}", time.time()
        self.rs_id, self.msg_id = f"rs_{uuid.uuid4().hex[:24]}", f"msg_{uuid.uuid4().hex[:24]}"

    def envelope(self, status: str, output: list, usage: Optional[dict] = None, finish: Optional[str] = None) -> dict:
        req = self.req
        body = {"id": self.id, "object": "response", "created_at": self.created, "model": self.model_id,
                "status": status, "output": output, "parallel_tool_calls": False, "tool_choice": "none", "tools": [],
                "temperature": self.gen.temperature, "top_p": self.gen.top_p,
                "max_output_tokens": req.max_output_tokens, "instructions": req.instructions,
                "metadata": req.metadata or {}, "error": None,
                "incomplete_details": {"reason": "max_output_tokens"} if finish == "length" else None,
                "reasoning": {"effort": self.effort, "summary": None},
                "text": {"format": {"type": (req.text.format.type if req.text and req.text.format else "text")}},
                "top_logprobs": req.top_logprobs, "truncation": "disabled", "usage": None}
        if status != "in_progress":
            body["completed_at"] = time.time()
        if usage is not None:
            body["usage"] = _usage(usage)
            if usage.get("thinking_closed"):
                body["reasoning_closed"] = usage["thinking_closed"]  # "budget" | "loop": the server closed it
        return body

    def reasoning_item(self, text: str, status: str = "completed") -> dict:
        content = [{"type": "reasoning_text", "text": text}] if status == "completed" else []
        return {"type": "reasoning", "id": self.rs_id, "summary": [], "content": content, "status": status}

    def message_item(self, text: str, logprobs: list, status: str = "completed") -> dict:
        content = [output_text(text, logprobs)] if status == "completed" else []
        return {"type": "message", "id": self.msg_id, "status": status, "role": "assistant", "content": content}


class ResponsesStream:
    """The semantic events of one generation, a state machine: none -> reasoning -> message. Each engine
    event gives the SSE events to send, numbered in order."""

    def __init__(self, shape: ResponseShape, engine: BatchEngine, metrics):
        self.shape, self.engine, self.metrics = shape, engine, metrics
        self.sequence_number = 0
        self.state = "none"
        self.output: list[dict] = []
        self.reasoning, self.answer = "", ""
        self.answer_lp: list[dict] = []
        self.pending_lp: list[dict] = []

    def event(self, kind: str, **fields) -> str:
        body = {"type": kind, "sequence_number": self.sequence_number, **fields}
        self.sequence_number += 1
        return f"event: {kind}\ndata: {json.dumps(body, ensure_ascii=False)}\n\n"

    async def events(self, sub: Submission):
        yield self.event("response.created", response=self.shape.envelope("in_progress", []))
        yield self.event("response.in_progress", response=self.shape.envelope("in_progress", []))
        while sub.remaining:
            _, ev = await sub.next()
            for part in self.on_event(ev):
                yield part

    def on_event(self, ev: Event) -> list[str]:
        if ev.kind == "logprob":
            if ev.data["part"] == "answer":
                self.pending_lp.append(logprob_entry(self.engine, ev.data))
            return []
        if ev.kind == "reasoning":
            return self.on_reasoning(ev.text)
        if ev.kind == "answer":
            return self.to_message() + self.on_answer(ev.text)
        if ev.kind == "done" and ev.finish_reason != "error":
            return self.to_message() + self.complete(ev)
        if ev.kind == "done":
            return self.fail(ev)
        return []

    def on_reasoning(self, text: str) -> list[str]:
        out, index, rs_id = [], len(self.output), self.shape.rs_id
        if self.state == "none":
            self.state = "reasoning"
            out += [self.event("response.output_item.added", output_index=index,
                               item=self.shape.reasoning_item("", "in_progress")),
                    self.event("response.content_part.added", item_id=rs_id, output_index=index, content_index=0,
                               part={"type": "reasoning_text", "text": ""})]
        if self.state == "reasoning":  # thinking after the answer began is not sent
            self.reasoning += text
            out.append(self.event("response.reasoning_text.delta", item_id=rs_id, output_index=index,
                                  content_index=0, delta=text))
        return out

    def to_message(self) -> list[str]:
        """The events that close the reasoning item and open the message item, where still needed."""
        out = self.close_reasoning() if self.state == "reasoning" else []
        if self.state != "message":
            self.state = "message"
            index, msg_id = len(self.output), self.shape.msg_id
            out += [self.event("response.output_item.added", output_index=index,
                               item=self.shape.message_item("", [], "in_progress")),
                    self.event("response.content_part.added", item_id=msg_id, output_index=index, content_index=0,
                               part=output_text("", []))]
        return out

    def close_reasoning(self) -> list[str]:
        item = self.shape.reasoning_item(self.reasoning)
        self.output.append(item)
        index, rs_id = len(self.output) - 1, self.shape.rs_id
        return [self.event("response.reasoning_text.done", item_id=rs_id, output_index=index, content_index=0,
                           text=self.reasoning),
                self.event("response.content_part.done", item_id=rs_id, output_index=index, content_index=0,
                           part={"type": "reasoning_text", "text": self.reasoning}),
                self.event("response.output_item.done", output_index=index, item=item)]

    def on_answer(self, text: str) -> list[str]:
        self.answer += text
        self.answer_lp += self.pending_lp
        delta = self.event("response.output_text.delta", item_id=self.shape.msg_id, output_index=len(self.output),
                           content_index=0, delta=text, logprobs=self.pending_lp)
        self.pending_lp = []
        return [delta]

    def complete(self, ev: Event) -> list[str]:
        self.metrics.record(ev.usage)
        self.answer_lp += self.pending_lp
        index, msg_id = len(self.output), self.shape.msg_id
        item = self.shape.message_item(self.answer, self.answer_lp)
        self.output.append(item)
        status = final_status(ev.finish_reason)
        return [self.event("response.output_text.done", item_id=msg_id, output_index=index, content_index=0,
                           text=self.answer, logprobs=self.answer_lp),
                self.event("response.content_part.done", item_id=msg_id, output_index=index, content_index=0,
                           part=output_text(self.answer, self.answer_lp)),
                self.event("response.output_item.done", output_index=index, item=item),
                self.event(f"response.{status}",
                           response=self.shape.envelope(status, self.output, ev.usage, ev.finish_reason))]

    def fail(self, ev: Event) -> list[str]:
        message = f"generation failed: {ev.usage.get('error')}"
        failed = self.shape.envelope("failed", self.output)
        failed["error"] = {"code": "server_error", "message": message}
        return [self.event("response.failed", response=failed),
                self.event("error", **error_body(message, "server_error")["error"])]


class OpenAIServingResponses(OpenAIServing):
    async def create_response(self, req: ResponsesRequest, request: Request):
        engine = self.engine()
        effort = req.reasoning.effort if req.reasoning else None
        prompt, opened = self.prompt(input_messages(req), thinking=effort != "none")
        want_logprobs = bool(req.include and LOGPROBS_INCLUDE in req.include) or req.top_logprobs is not None
        options = SamplingOptions(
            max_tokens=req.max_output_tokens, temperature=req.temperature, top_p=req.top_p, top_k=req.top_k,
            seed=req.seed, thinking_budget=self.thinking_budget(req.thinking_budget_tokens, effort),
            logprobs=(req.top_logprobs or 0) if want_logprobs else None, response_format=_format_dict(req),
            loop_guard=req.reasoning_loop_guard)
        gen = self.generation(engine, engine.tokenize(prompt, special=True), options, thinking=opened,
                              prompt_param="input")
        sub = Submission(engine, [gen])
        shape = ResponseShape(req, gen, self.model_id, effort)
        if req.stream:
            return sse_response(ResponsesStream(shape, engine, self.metrics).events(sub), sub)
        result = (await collect(request, sub, self.metrics))[0]
        answer_lp = [logprob_entry(engine, d) for d in result.logprobs if d["part"] == "answer"]
        output = [shape.reasoning_item(result.reasoning)] if result.reasoning else []
        output.append(shape.message_item(result.answer, answer_lp))
        finish = result.done.finish_reason
        return shape.envelope(final_status(finish), output, result.done.usage, finish)
