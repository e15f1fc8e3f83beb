"""/v1/completions, streaming and not (vLLM's ``OpenAIServingCompletion``): text or token-id prompts,
several prompts and ``n`` choices each, the text as the model wrote it (no reasoning split)."""

from __future__ import annotations

import time
from typing import Optional

from fastapi import Request

from r1_distill.llama.engine import BatchEngine, Event

from .protocol import CompletionRequest
from .sampling_options import SamplingOptions
from .serving import ChoiceEvents, OpenAIServing, logprob_entry, usage_block, usage_totals
from .sse import sse, sse_response
from .submission import ChoiceResult, Submission, collect


def completion_options(req: CompletionRequest) -> SamplingOptions:
    return SamplingOptions(
        max_tokens=req.max_tokens, temperature=req.temperature, top_p=req.top_p, top_k=req.top_k,
        seed=req.seed, stop=req.stop or [], logprobs=req.logprobs, presence=req.presence_penalty,
        frequency=req.frequency_penalty, repeat=req.repeat, repeat_last_n=req.repeat_last_n,
        logit_bias=req.logit_bias, response_format=req.response_format.as_dict() if req.response_format else None,
        min_tokens=req.min_tokens, ignore_eos=req.ignore_eos, loop_guard=req.reasoning_loop_guard)


class CompletionResponse:
    """One request's answer in Completions' shapes; `firsts`: which choices count their prompt in usage."""

    def __init__(self, req: CompletionRequest, engine: BatchEngine, model_id: str, request_id: str, firsts: list[bool]):
        self.req, self.engine, self.model_id, self.firsts = req, engine, model_id, firsts
        self.id, self.created = f"cmpl-{request_id}", int(time.time())

    def logprobs(self, entries: list[dict], offset: int = 0) -> dict:
        out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        for data in entries:
            e = logprob_entry(self.engine, data)
            out["tokens"].append(e["token"])
            out["token_logprobs"].append(e["logprob"])
            out["top_logprobs"].append({t["token"]: t["logprob"] for t in e["top_logprobs"]})
            out["text_offset"].append(offset)
            offset += len(e["token"])
        return out

    def completion(self, results: list[ChoiceResult]) -> dict:
        choices = [{"index": i, "text": r.raw, "finish_reason": r.done.finish_reason,
                    "logprobs": self.logprobs(r.logprobs) if self.req.logprobs is not None else None}
                   for i, r in enumerate(results)]
        return {**self._body(choices), "usage": usage_block(usage_totals([r.done for r in results], self.firsts))}

    def chunk(self, i: int, text: str, finish: Optional[str] = None, logprobs: Optional[list] = None,
              offset: int = 0) -> str:
        lp = self.logprobs(logprobs or [], offset) if self.req.logprobs is not None else None
        return sse(self._body([{"index": i, "text": text, "finish_reason": finish, "logprobs": lp}]))

    def usage_chunk(self, dones: list[Event]) -> str:
        return sse({**self._body([]), "usage": usage_block(usage_totals(dones, self.firsts))})

    def _body(self, choices: list) -> dict:
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.model_id,
                "choices": choices}


class OpenAIServingCompletion(OpenAIServing):
    async def create_completion(self, req: CompletionRequest, request: Request):
        engine = self.engine()
        options = completion_options(req)
        gens, firsts = [], []
        for p in req.prompts():
            tokens = engine.tokenize(p, special=True) if isinstance(p, str) else list(p)
            for j in range(req.n):
                gens.append(self.generation(engine, tokens, options, thinking=False, prompt_param="prompt",
                                            index=len(gens)))
                firsts.append(j == 0)
        sub = Submission(engine, gens)
        response = CompletionResponse(req, engine, self.model_id, gens[0].id, firsts)
        if not req.stream:
            return response.completion(await collect(request, sub, self.metrics))
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return sse_response(self._stream(response, sub, include_usage), sub)

    async def _stream(self, response: CompletionResponse, sub: Submission, include_usage: bool):
        events = ChoiceEvents(sub, self.metrics)
        offsets = [0] * len(events.dones)
        async for i, ev in events:
            if ev.kind == "raw":
                yield response.chunk(i, ev.text, None, events.take(i), offsets[i])
                offsets[i] += len(ev.text)
            elif ev.kind == "done":
                yield response.chunk(i, "", ev.finish_reason, events.take(i), offsets[i])
        if events.failed is not None:
            yield events.failed
        elif include_usage:
            yield response.usage_chunk(events.dones)
        yield "data: [DONE]\n\n"
