"""Checked request fields to an engine request (:class:`~r1_distill.llama.engine.GenerationRequest`): the
registry's sampling defaults under them, the context and vocabulary limits, the grammar built once to
refuse a bad one with a 400."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from r1_distill.llama.engine import BatchEngine, GenerationRequest
from r1_distill.llama.loop_guard import LoopGuard
from r1_distill.llama.sampling import Penalties, grammar_sampler

from .errors import APIError
from .grammar import GrammarError, response_format_grammar


@dataclass
class SamplingOptions:
    """A request's sampling fields, named the same whatever the endpoint calls them."""
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    seed: Optional[int] = None
    stop: list[str] = field(default_factory=list)
    thinking_budget: Optional[int] = None
    wait_forcing: int = 0
    logprobs: Optional[int] = None
    presence: Optional[float] = None
    frequency: Optional[float] = None
    repeat: Optional[float] = None
    repeat_last_n: Optional[int] = None
    logit_bias: Optional[dict[str, float]] = None
    response_format: Optional[dict] = None
    min_tokens: Optional[int] = None
    ignore_eos: bool = False
    loop_guard: bool = True  # close a thinking that repeats itself (see r1_distill.llama.loop_guard)


def thinking_budget(explicit: Optional[int], effort: Optional[str], effort_budgets: dict) -> Optional[int]:
    """Reasoning tokens allowed: the request's own budget, else its reasoning effort's (minimal: none)."""
    if explicit is not None:
        return explicit
    if effort in ("low", "medium", "high"):
        return effort_budgets[effort]
    return 0 if effort == "minimal" else None


def checked_grammar(engine: BatchEngine, response_format: Optional[dict], param: str) -> Optional[str]:
    try:
        gbnf = response_format_grammar(response_format)
    except GrammarError as exc:
        raise APIError(400, str(exc), param=param) from None
    if gbnf is not None:
        sampler = grammar_sampler(engine.L, engine.vocab, gbnf)
        if sampler is None:
            raise APIError(400, "llama.cpp could not build a grammar from this response_format", param=param)
        engine.L.llama_sampler_free(sampler)
    return gbnf


def _check_prompt(engine: BatchEngine, tokens: list[int], options: SamplingOptions, prompt_param: str) -> None:
    if not tokens:
        raise APIError(400, "the prompt is empty", param=prompt_param)
    if len(tokens) >= engine.ctx_per_slot:
        raise APIError(400, f"the prompt is {len(tokens)} tokens; this server's context is {engine.ctx_per_slot} "
                            "tokens: shorten the conversation or restart the server with a larger --ctx",
                       param=prompt_param, code="context_length_exceeded")
    if any(t >= engine.n_vocab for t in tokens):
        raise APIError(400, f"the prompt holds token ids beyond the vocabulary ({engine.n_vocab})", param=prompt_param)
    if options.max_tokens is not None and options.max_tokens > engine.ctx_per_slot:
        raise APIError(400, f"max_tokens {options.max_tokens} exceeds the context of {engine.ctx_per_slot} tokens",
                       param="max_tokens")


def _logit_bias(engine: BatchEngine, options: SamplingOptions) -> Optional[dict[int, float]]:
    if not options.logit_bias:
        return None
    bias = {int(k): float(v) for k, v in options.logit_bias.items()}
    beyond = [k for k in bias if k >= engine.n_vocab]
    if beyond:
        raise APIError(400, f"logit_bias: token id {beyond[0]} is beyond the vocabulary ({engine.n_vocab})",
                       param="logit_bias")
    return bias


def _penalties(engine: BatchEngine, options: SamplingOptions) -> Optional[Penalties]:
    last_n = options.repeat_last_n if options.repeat_last_n is not None else 64
    penalties = Penalties(repeat=float(options.repeat if options.repeat is not None else 1.0),
                          frequency=float(options.frequency or 0.0), presence=float(options.presence or 0.0),
                          last_n=engine.ctx_per_slot if last_n == -1 else min(last_n, engine.ctx_per_slot))
    return penalties if penalties.active else None


def engine_request(engine: BatchEngine, tokens: list[int], options: SamplingOptions, sampling, *, thinking: bool,
                   prompt_param: str, index: int = 0) -> GenerationRequest:
    _check_prompt(engine, tokens, options, prompt_param)
    room = engine.ctx_per_slot - len(tokens)
    max_tokens = min(options.max_tokens or min(sampling.max_new_tokens, room), room)
    if options.min_tokens is not None and options.max_tokens is not None and options.min_tokens > options.max_tokens:
        raise APIError(400, f"min_tokens {options.min_tokens} exceeds max_tokens {options.max_tokens}",
                       param="min_tokens")
    bias = _logit_bias(engine, options)
    penalties = _penalties(engine, options)
    return GenerationRequest(
        prompt_tokens=tokens, max_tokens=max_tokens,
        temperature=sampling.temperature if options.temperature is None else float(options.temperature),
        top_p=sampling.top_p if options.top_p is None else float(options.top_p), top_k=options.top_k or 0,
        seed=None if options.seed is None else (options.seed + index) % 2**64, stop=options.stop, thinking=thinking,
        thinking_budget=options.thinking_budget, wait_forcing=options.wait_forcing, logprobs=options.logprobs,
        penalties=penalties, logit_bias=bias, loop_guard=LoopGuard() if options.loop_guard else None,
        min_tokens=max_tokens if options.ignore_eos else min(options.min_tokens or 0, max_tokens),
        grammar=checked_grammar(engine, options.response_format, "response_format"))
