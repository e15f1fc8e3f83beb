"""/v1/chat/completions, streaming and not (vLLM's ``OpenAIServingChat``).

The thinking comes back apart under both names clients read: ``reasoning_content`` (DeepSeek's API,
llama-server) and ``reasoning`` (vLLM, Ollama), on messages and on stream deltas. ``n`` choices decode
as separate sequences; logprobs cover the sampled tokens (the answer's under ``content``, the
thinking's under ``reasoning``)."""

from __future__ import annotations

import time
from typing import Optional

from fastapi import Request

from r1_distill.llama.engine import BatchEngine, Event

from .protocol import ChatCompletionRequest
from .sampling_options import SamplingOptions
from .serving import ChoiceEvents, OpenAIServing, logprob_entry, usage_block, usage_totals
from .sse import sse, sse_response
from .submission import ChoiceResult, Submission, collect


def chat_options(req: ChatCompletionRequest, thinking_budget: Optional[int]) -> SamplingOptions:
    return SamplingOptions(
        max_tokens=req.max_completion_tokens or req.max_tokens, temperature=req.temperature, top_p=req.top_p,
        top_k=req.top_k, seed=req.seed, stop=req.stop or [], thinking_budget=thinking_budget,
        wait_forcing=req.budget_forcing_waits, logprobs=req.logprobs_n, presence=req.presence_penalty,
        frequency=req.frequency_penalty, repeat=req.repeat, repeat_last_n=req.repeat_last_n,
        logit_bias=req.logit_bias, response_format=req.response_format.as_dict() if req.response_format else None,
        min_tokens=req.min_tokens, ignore_eos=req.ignore_eos, loop_guard=req.reasoning_loop_guard)


def chat_messages(req: ChatCompletionRequest) -> list[dict]:
    # earlier turns' thinking (reasoning_content / reasoning) is never sent back to the model
    return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in req.messages]


def closed_by(done: Optional[Event]) -> dict:
    """`reasoning_closed`: "budget" or "loop" when the server closed the thinking (absent otherwise)."""
    closed = done.usage.get("thinking_closed") if done is not None and done.usage else None
    return {"reasoning_closed": closed} if closed else {}


class ChatResponse:
    """One request's answer in Chat Completions' shapes: the whole completion, or its stream's chunks."""

    def __init__(self, req: ChatCompletionRequest, engine: BatchEngine, model_id: str, request_id: str):
        self.req, self.engine, self.model_id = req, engine, model_id
        self.raw_format = req.reasoning_format == "none"
        self.id, self.created = f"chatcmpl-{request_id}", int(time.time())

    def logprobs(self, entries: list[dict]) -> dict:
        out = {"content": [], "refusal": None}
        if not self.raw_format:
            out["reasoning"] = []
        for data in entries:
            key = "content" if self.raw_format or data["part"] == "answer" else "reasoning"
            out[key].append(logprob_entry(self.engine, data))
        return out

    def choice(self, i: int, r: ChoiceResult) -> dict:
        message = {"role": "assistant", "content": r.raw if self.raw_format else r.answer}
        if not self.raw_format:
            message["reasoning_content"] = message["reasoning"] = r.reasoning
        out = {"index": i, "message": message, "finish_reason": r.done.finish_reason,
               "logprobs": self.logprobs(r.logprobs) if self.req.logprobs else None}
        return {**out, **closed_by(r.done)}

    def completion(self, results: list[ChoiceResult]) -> dict:
        usage = usage_totals([r.done for r in results], [i == 0 for i in range(len(results))])
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model_id,
                "choices": [self.choice(i, r) for i, r in enumerate(results)], "usage": usage_block(usage)}

    def delta(self, ev: Event) -> Optional[dict]:
        """A text event as a stream delta, or None for the kind this reasoning format does not send."""
        if self.raw_format:
            return {"content": ev.text} if ev.kind == "raw" else None
        if ev.kind == "reasoning":
            return {"reasoning_content": ev.text, "reasoning": ev.text}
        return {"content": ev.text} if ev.kind == "answer" else None

    def chunk(self, i: int, delta: dict, finish: Optional[str] = None, logprobs: Optional[list] = None,
              done: Optional[Event] = None) -> str:
        choice = {"index": i, "delta": delta, "finish_reason": finish, **closed_by(done)}
        if self.req.logprobs:
            choice["logprobs"] = self.logprobs(logprobs) if logprobs else None
        return sse(self._chunk_body([choice]))

    def usage_chunk(self, dones: list[Event]) -> str:
        usage = usage_totals(dones, [i == 0 for i in range(len(dones))])
        return sse({**self._chunk_body([]), "usage": usage_block(usage)})

    def _chunk_body(self, choices: list) -> dict:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model_id,
                "choices": choices}


class OpenAIServingChat(OpenAIServing):
    async def create_chat_completion(self, req: ChatCompletionRequest, request: Request):
        engine = self.engine()
        kwargs = req.chat_template_kwargs.model_dump(exclude_none=True) if req.chat_template_kwargs else None
        prompt, opened = self.prompt(chat_messages(req), thinking=req.thinking, template_kwargs=kwargs)
        tokens = engine.tokenize(prompt, special=True)
        options = chat_options(req, self.thinking_budget(req.thinking_budget_tokens, req.reasoning_effort))
        gens = [self.generation(engine, tokens, options, thinking=opened, prompt_param="messages", index=i)
                for i in range(req.n)]
        sub = Submission(engine, gens)
        response = ChatResponse(req, engine, self.model_id, gens[0].id)
        if not req.stream:
            return response.completion(await collect(request, sub, self.metrics))
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return sse_response(self._stream(response, sub, include_usage), sub)

    async def _stream(self, response: ChatResponse, sub: Submission, include_usage: bool):
        events = ChoiceEvents(sub, self.metrics)
        for i in range(len(events.dones)):
            yield response.chunk(i, {"role": "assistant", "content": ""})
        async for i, ev in events:
            if ev.kind == "done":
                yield response.chunk(i, {}, ev.finish_reason, events.take(i), ev)
                continue
            delta = response.delta(ev)
            if delta is not None:
                yield response.chunk(i, delta, None, events.take(i))
        if events.failed is not None:
            yield events.failed
        elif include_usage:
            yield response.usage_chunk(events.dones)
        yield "data: [DONE]\n\n"
