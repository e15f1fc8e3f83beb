"""Runaway thinking: a reasoning model that repeats itself until the token limit and never answers
(R1-Distill models do; Ollama issues 12606 and 16216, vLLM PR 52677). The engine watches the thinking's
tokens: when the latest `ngram` tokens have appeared `repeats` times (not overlapping) among the last
`window`, the thinking is looping, and the engine closes it (``</think>`` and the answer's prefix) so that
the model answers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass(frozen=True)
class LoopGuard:
    ngram: int = 16  # the repeated span, in tokens
    repeats: int = 4  # how many times it must appear (the latest included)
    window: int = 2048  # among the last this many tokens of the thinking


def repeats_of_tail(tokens, ngram: int, window: int) -> int:
    """How many times the last `ngram` tokens occur, not overlapping, among the last `window` tokens
    (counted from the end, the tail itself included); 0 when there are fewer than `ngram` tokens."""
    tail = np.asarray(tokens[-window:], dtype=np.int64)
    if tail.size < ngram or ngram <= 0:
        return 0
    last = tail[-ngram:]
    starts = np.flatnonzero(tail[: tail.size - ngram + 1] == last[0])  # candidates first: cheap
    starts = starts[(sliding_window_view(tail, ngram)[starts] == last).all(axis=1)]
    count, free_until = 0, tail.size  # an occurrence must end before the one after it starts
    for start in starts[::-1]:
        if start + ngram <= free_until:
            count += 1
            free_until = start
    return count


class LoopDetector:
    """One sequence's thinking, fed a token at a time; `add` says when it has started to loop."""

    def __init__(self, guard: LoopGuard):
        self.guard = guard
        self.tokens: list[int] = []

    def add(self, token: int) -> bool:
        g = self.guard
        self.tokens.append(token)
        if len(self.tokens) > 2 * g.window:
            del self.tokens[: -g.window]
        if len(self.tokens) < g.ngram * g.repeats:
            return False
        return repeats_of_tail(self.tokens, g.ngram, g.window) >= g.repeats
