"""/v1/chat/completions and /v1/completions, streaming and not.

The thinking comes back apart under both names clients read: ``reasoning_content`` (DeepSeek's API,
llama-server) and ``reasoning`` (vLLM, Ollama), on messages and on stream deltas. ``n`` choices decode
as separate sequences; logprobs cover the sampled tokens (the answer's under ``content``, the
thinking's under ``reasoning``)."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request

from .protocol import ChatCompletionRequest, CompletionRequest
from .runtime import Knobs, Submission, collect, engine_request, logprob_entry, parse, usage_totals
from .sse import generation_failed, sse, sse_response


def usage_block(u: dict) -> dict:
    return {"prompt_tokens": u["prompt_tokens"], "completion_tokens": u["completion_tokens"],
            "total_tokens": u["total_tokens"], "prompt_tokens_details": {"cached_tokens": u["cached_tokens"]},
            "completion_tokens_details": {"reasoning_tokens": u["reasoning_tokens"]}}


def chat_knobs(req: ChatCompletionRequest, effort_budgets: dict) -> Knobs:
    budget = req.thinking_budget_tokens
    if budget is None and req.reasoning_effort in ("low", "medium", "high"):
        budget = effort_budgets[req.reasoning_effort]
    elif budget is None and req.reasoning_effort == "minimal":
        budget = 0
    return Knobs(max_tokens=req.max_completion_tokens or req.max_tokens, temperature=req.temperature, top_p=req.top_p,
                 top_k=req.top_k, seed=req.seed, stop=req.stop or [], thinking_budget=budget,
                 wait_forcing=req.budget_forcing_waits, logprobs=req.logprobs_n, presence=req.presence_penalty,
                 frequency=req.frequency_penalty, repeat=req.repeat, repeat_last_n=req.repeat_last_n,
                 logit_bias=req.logit_bias, response_format=req.response_format.as_dict() if req.response_format else None,
                 min_tokens=req.min_tokens, ignore_eos=req.ignore_eos)


def completion_knobs(req: CompletionRequest) -> Knobs:
    return Knobs(max_tokens=req.max_tokens, temperature=req.temperature, top_p=req.top_p, top_k=req.top_k,
                 seed=req.seed, stop=req.stop or [], logprobs=req.logprobs, presence=req.presence_penalty,
                 frequency=req.frequency_penalty, repeat=req.repeat, repeat_last_n=req.repeat_last_n,
                 logit_bias=req.logit_bias, response_format=req.response_format.as_dict() if req.response_format else None,
                 min_tokens=req.min_tokens, ignore_eos=req.ignore_eos)


def chat_messages(req: ChatCompletionRequest) -> list[dict]:
    # earlier turns' thinking (reasoning_content / reasoning) is never sent back to the model
    return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in req.messages]


def register(app: FastAPI, runtime, metrics, model_id: str, sampling, effort_budgets: dict) -> None:
    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        req = await parse(request, ChatCompletionRequest)
        engine = runtime.engine_or_503()
        kwargs = req.chat_template_kwargs.model_dump(exclude_none=True) if req.chat_template_kwargs else None
        prompt, opened = runtime.formatter.prompt(chat_messages(req), thinking=req.thinking, template_kwargs=kwargs)
        tokens = engine.tokenize(prompt, special=True)
        knobs = chat_knobs(req, effort_budgets)
        gens = [engine_request(engine, tokens, knobs, sampling, thinking=opened, prompt_param="messages", index=i)
                for i in range(req.n)]
        raw_format = req.reasoning_format == "none"
        sub = Submission(engine, gens)
        created, cid = int(time.time()), f"chatcmpl-{gens[0].id}"

        def logprobs_block(entries: list[dict]) -> dict:
            out = {"content": [], "refusal": None}
            if not raw_format:
                out["reasoning"] = []
            for data in entries:
                key = "content" if raw_format or data["part"] == "answer" else "reasoning"
                out[key].append(logprob_entry(engine, data))
            return out

        if not req.stream:
            results = await collect(request, sub, metrics)
            choices = []
            for i, r in enumerate(results):
                message = {"role": "assistant", "content": r.raw if raw_format else r.answer}
                if not raw_format:
                    message["reasoning_content"] = message["reasoning"] = r.reasoning
                choices.append({"index": i, "message": message, "finish_reason": r.done.finish_reason,
                                "logprobs": logprobs_block(r.logprobs) if req.logprobs else None})
            usage = usage_totals([r.done for r in results], [i == 0 for i in range(len(results))])
            return {"id": cid, "object": "chat.completion", "created": created, "model": model_id,
                    "choices": choices, "usage": usage_block(usage)}

        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        def chunk(i: int, delta: dict, finish=None, logprobs=None) -> str:
            choice = {"index": i, "delta": delta, "finish_reason": finish}
            if req.logprobs:
                choice["logprobs"] = logprobs_block(logprobs) if logprobs else None
            return sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model_id,
                        "choices": [choice]})

        async def stream():
            pending: list[list[dict]] = [[] for _ in gens]
            dones = [None] * len(gens)
            for i in range(len(gens)):
                yield chunk(i, {"role": "assistant", "content": ""})
            while sub.remaining:
                i, ev = await sub.next()
                if ev.kind == "logprob":
                    pending[i].append(ev.data)
                    continue
                if ev.kind == "done":
                    if ev.finish_reason == "error":
                        yield generation_failed(sub, ev)
                        break
                    metrics.record(ev.usage)
                    dones[i] = ev
                    yield chunk(i, {}, ev.finish_reason, pending[i])
                    pending[i] = []
                    continue
                if raw_format and ev.kind == "raw":
                    delta = {"content": ev.text}
                elif not raw_format and ev.kind == "reasoning":
                    delta = {"reasoning_content": ev.text, "reasoning": ev.text}
                elif not raw_format and ev.kind == "answer":
                    delta = {"content": ev.text}
                else:
                    continue
                yield chunk(i, delta, None, pending[i])
                pending[i] = []
            else:
                if include_usage:
                    usage = usage_totals(dones, [i == 0 for i in range(len(dones))])
                    yield sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model_id,
                               "choices": [], "usage": usage_block(usage)})
            yield "data: [DONE]\n\n"

        return sse_response(stream(), sub)

    @app.post("/v1/completions")
    async def completions(request: Request):
        req = await parse(request, CompletionRequest)
        engine = runtime.engine_or_503()
        knobs = completion_knobs(req)
        gens, firsts = [], []
        for p in req.prompts():
            tokens = engine.tokenize(p, special=True) if isinstance(p, str) else list(p)
            for j in range(req.n):
                gens.append(engine_request(engine, tokens, knobs, sampling, thinking=False, prompt_param="prompt",
                                           index=len(gens)))
                firsts.append(j == 0)
        sub = Submission(engine, gens)
        created, cid = int(time.time()), f"cmpl-{gens[0].id}"

        def logprobs_block(entries: list[dict], offset: int = 0) -> dict:
            out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
            for data in entries:
                e = logprob_entry(engine, data)
                out["tokens"].append(e["token"])
                out["token_logprobs"].append(e["logprob"])
                out["top_logprobs"].append({t["token"]: t["logprob"] for t in e["top_logprobs"]})
                out["text_offset"].append(offset)
                offset += len(e["token"])
            return out

        if not req.stream:
            results = await collect(request, sub, metrics)
            choices = [{"index": i, "text": r.raw, "finish_reason": r.done.finish_reason,
                        "logprobs": logprobs_block(r.logprobs) if req.logprobs is not None else None}
                       for i, r in enumerate(results)]
            return {"id": cid, "object": "text_completion", "created": created, "model": model_id,
                    "choices": choices, "usage": usage_block(usage_totals([r.done for r in results], firsts))}

        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        def chunk(i: int, text: str, finish=None, logprobs=None, offset: int = 0) -> str:
            lp = logprobs_block(logprobs or [], offset) if req.logprobs is not None else None
            return sse({"id": cid, "object": "text_completion", "created": created, "model": model_id,
                        "choices": [{"index": i, "text": text, "finish_reason": finish, "logprobs": lp}]})

        async def stream():
            pending: list[list[dict]] = [[] for _ in gens]
            offsets = [0] * len(gens)
            dones = [None] * len(gens)
            while sub.remaining:
                i, ev = await sub.next()
                if ev.kind == "logprob":
                    pending[i].append(ev.data)
                elif ev.kind == "raw":
                    yield chunk(i, ev.text, None, pending[i], offsets[i])
                    offsets[i] += len(ev.text)
                    pending[i] = []
                elif ev.kind == "done":
                    if ev.finish_reason == "error":
                        yield generation_failed(sub, ev)
                        break
                    metrics.record(ev.usage)
                    dones[i] = ev
                    yield chunk(i, "", ev.finish_reason, pending[i], offsets[i])
                    pending[i] = []
            else:
                if include_usage:
                    yield sse({"id": cid, "object": "text_completion", "created": created, "model": model_id,
                               "choices": [], "usage": usage_block(usage_totals(dones, firsts))})
            yield "data: [DONE]\n\n"

        return sse_response(stream(), sub)
