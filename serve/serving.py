"""What every API's serving class shares (vLLM's ``OpenAIServing``): the runtime's engine and chat
template, the metrics, the served model id, the registry's sampling defaults and reasoning-effort budgets;
and the pieces of a response that the APIs have in common (usage, logprob entries, a stream's events)."""

from __future__ import annotations

from typing import AsyncIterator, Optional

from r1_distill.llama.chat_template import TemplateError
from r1_distill.llama.engine import BatchEngine, Event, GenerationRequest

from .errors import APIError
from .runtime import Runtime
from .sampling_options import SamplingOptions, engine_request, thinking_budget
from .sse import generation_failed
from .submission import Submission


class OpenAIServing:
    def __init__(self, runtime: Runtime, metrics, model_id: str, sampling, effort_budgets: dict):
        self.runtime, self.metrics, self.model_id = runtime, metrics, model_id
        self.sampling, self.effort_budgets = sampling, effort_budgets

    def engine(self) -> BatchEngine:
        return self.runtime.engine_or_503()

    def prompt(self, messages: list[dict], *, thinking: bool, template_kwargs: Optional[dict] = None) -> tuple[str, bool]:
        """The chat template's prompt and whether it leaves the thinking open; a template error is a 400."""
        try:
            return self.runtime.formatter.prompt(messages, thinking=thinking, template_kwargs=template_kwargs)
        except TemplateError as exc:
            raise APIError(400, str(exc)) from None

    def thinking_budget(self, explicit: Optional[int], effort: Optional[str]) -> Optional[int]:
        return thinking_budget(explicit, effort, self.effort_budgets)

    def generation(self, engine: BatchEngine, tokens: list[int], options: SamplingOptions, *, thinking: bool,
                   prompt_param: str, index: int = 0) -> GenerationRequest:
        return engine_request(engine, tokens, options, self.sampling, thinking=thinking, prompt_param=prompt_param,
                              index=index)


class ChoiceEvents:
    """A stream's view of a submission: its text and "done" events in order (each done recorded in the
    metrics), each choice's logprobs gathered until the chunk that carries them takes them. A failed
    generation stops the events and cancels the rest; `failed` is then the error event to send."""

    def __init__(self, sub: Submission, metrics):
        self.sub, self.metrics = sub, metrics
        self.pending: list[list[dict]] = [[] for _ in sub.cancels]
        self.dones: list[Optional[Event]] = [None] * len(sub.cancels)
        self.failed: Optional[str] = None

    async def __aiter__(self) -> AsyncIterator[tuple[int, Event]]:
        while self.sub.remaining:
            i, ev = await self.sub.next()
            if ev.kind == "logprob":
                self.pending[i].append(ev.data)
                continue
            if ev.kind == "done":
                if ev.finish_reason == "error":
                    self.failed = generation_failed(self.sub, ev)
                    return
                self.metrics.record(ev.usage)
                self.dones[i] = ev
            yield i, ev

    def take(self, i: int) -> list[dict]:
        """Choice i's logprobs since the last chunk that carried them."""
        taken, self.pending[i] = self.pending[i], []
        return taken


def usage_totals(dones: list[Event], prompt_counted: list[bool]) -> dict:
    """Summed over choices; a prompt shared by several choices counts once."""
    prompt = sum(d.usage["prompt_tokens"] for d, first in zip(dones, prompt_counted) if first)
    cached = sum(d.usage.get("cached_tokens", 0) for d, first in zip(dones, prompt_counted) if first)
    completion = sum(d.usage["completion_tokens"] for d in dones)
    reasoning = sum(d.usage["reasoning_tokens"] for d in dones)
    totals = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
              "reasoning_tokens": reasoning, "cached_tokens": cached}
    if any("draft_tokens" in d.usage for d in dones):  # speculative decoding on
        totals["draft_tokens"] = sum(d.usage.get("draft_tokens", 0) for d in dones)
        totals["draft_tokens_accepted"] = sum(d.usage.get("draft_tokens_accepted", 0) for d in dones)
    return totals


def usage_block(u: dict) -> dict:
    """Usage as Chat Completions and Completions write it; speculative decoding's drafts as OpenAI's predicted
    outputs count theirs (accepted_prediction_tokens, rejected_prediction_tokens)."""
    details = {"reasoning_tokens": u["reasoning_tokens"]}
    if "draft_tokens" in u:
        details["accepted_prediction_tokens"] = u["draft_tokens_accepted"]
        details["rejected_prediction_tokens"] = u["draft_tokens"] - u["draft_tokens_accepted"]
    return {"prompt_tokens": u["prompt_tokens"], "completion_tokens": u["completion_tokens"],
            "total_tokens": u["total_tokens"], "prompt_tokens_details": {"cached_tokens": u["cached_tokens"]},
            "completion_tokens_details": details}


def logprob_entry(engine: BatchEngine, data: dict) -> dict:
    def one(token: int, lp: float) -> dict:
        raw = engine.token_bytes(token)
        return {"token": raw.decode("utf-8", "replace"), "logprob": lp, "bytes": list(raw)}

    entry = one(data["token"], data["logprob"])
    entry["top_logprobs"] = [one(t, lp) for t, lp in data["top"]]
    return entry
