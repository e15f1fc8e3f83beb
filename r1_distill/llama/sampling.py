"""Choosing the next token: numpy nucleus sampling, llama.cpp's own penalty and grammar samplers, logprobs.

The plain path (temperature, top-k, top-p) is numpy with a partial sort (see :func:`sample_token`).
Penalties (repetition, frequency, presence) and grammars (``response_format``) are llama.cpp's
samplers (``llama_sampler_init_penalties``, ``llama_sampler_init_grammar``) applied to the logits
through a ``llama_token_data_array`` view of a numpy array, as llama-server's sampler chain does.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np


def sample_token(logits: np.ndarray, temperature: float, top_p: float, top_k: int, rng: np.random.Generator,
                 candidates: int = 256) -> int:
    """Temperature, then top-k, then top-p (nucleus), as transformers and vLLM order them.

    Exact, but fast on large vocabularies: the nucleus is looked for among the `candidates` most
    likely tokens (a partial sort); only when they hold less than `top_p` of the mass (a flat
    distribution) is the low tail cut by sorting the values. llama.cpp's own top-p sorts all 152k ids
    with their indices every token: 7x slower on a tiny model here.
    """
    if temperature <= 0:
        return int(np.argmax(logits))
    x = logits.astype(np.float64) / temperature
    if 0 < top_k < x.size:
        kth = np.partition(x, x.size - top_k)[x.size - top_k]
        x = np.where(x >= kth, x, -np.inf)
    probs = np.exp(x - x.max())
    probs /= probs.sum()
    if top_p < 1.0:
        k = min(candidates, probs.size)
        order = np.argpartition(-probs, k - 1)[:k]
        order = order[np.argsort(-probs[order], kind="stable")]
        cumulative = np.cumsum(probs[order])
        if cumulative[-1] >= top_p or k == probs.size:
            keep = order[: int(np.searchsorted(cumulative, top_p)) + 1]
        else:  # a flat distribution: cut the low tail of mass 1 - top_p, sorting values only
            ascending = np.sort(probs.astype(np.float32))
            cut = int(np.searchsorted(np.cumsum(ascending, dtype=np.float64), 1.0 - top_p, side="left"))
            keep = np.flatnonzero(probs >= ascending[min(cut, ascending.size - 1)])
        kept = probs[keep]
        return int(keep[min(np.searchsorted(np.cumsum(kept), rng.random() * kept.sum()), keep.size - 1)])
    return int(min(np.searchsorted(np.cumsum(probs), rng.random()), probs.size - 1))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x -= x.max()
    return x - np.log(np.exp(x).sum())


def top_logprobs(logprobs: np.ndarray, chosen: int, n: int) -> tuple[float, list[tuple[int, float]]]:
    """The chosen token's log-probability and the `n` most likely tokens with theirs, best first."""
    alternatives: list[tuple[int, float]] = []
    if n > 0:
        idx = np.argpartition(-logprobs, n - 1)[:n]
        idx = idx[np.argsort(-logprobs[idx], kind="stable")]
        alternatives = [(int(i), float(logprobs[i])) for i in idx]
    return float(logprobs[chosen]), alternatives


@dataclass(frozen=True)
class Penalties:
    repeat: float = 1.0  # llama.cpp's repetition penalty (1.0: off)
    frequency: float = 0.0
    presence: float = 0.0
    last_n: int = 64  # how many of the latest generated tokens count

    @property
    def active(self) -> bool:
        return self.last_n != 0 and (self.repeat != 1.0 or self.frequency != 0.0 or self.presence != 0.0)


def grammar_sampler(L, vocab, gbnf: str):
    """llama.cpp's grammar sampler for `gbnf` (root rule "root"), or None if llama.cpp rejects it."""
    sampler = L.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), b"root")
    return sampler or None


class LlamaSamplers:
    """One request's llama.cpp samplers (penalties, grammar, logit bias), applied to numpy logits.

    The grammar is checked lazily, as llama.cpp's common sampler does: the token sampled without it
    is tried first, and only when the grammar rejects it are the full logits masked and resampled.
    """

    def __init__(self, L, vocab, n_vocab: int, *, penalties: Penalties | None, gbnf: str | None,
                 logit_bias: dict[int, float] | None):
        self.L = L
        self.penalties = self.grammar = None
        self.bias_ids = self.bias_values = None
        if logit_bias:
            self.bias_ids = np.fromiter(logit_bias.keys(), dtype=np.int64)
            self.bias_values = np.fromiter(logit_bias.values(), dtype=np.float32)
        self._data = np.zeros(n_vocab, dtype=np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)]))
        self._data["id"] = np.arange(n_vocab, dtype=np.int32)
        self._array = L.llama_token_data_array(
            data=ctypes.cast(self._data.ctypes.data, ctypes.POINTER(L.llama_token_data)), size=n_vocab, selected=-1,
            sorted=False)
        self._one = (L.llama_token_data * 1)()
        self._one_array = L.llama_token_data_array(data=self._one, size=1, selected=-1, sorted=False)
        if penalties is not None and penalties.active:
            self.penalties = L.llama_sampler_init_penalties(n_vocab, penalties.last_n, penalties.repeat,
                                                            penalties.frequency, penalties.presence)
        if gbnf:
            self.grammar = grammar_sampler(L, vocab, gbnf)
            if self.grammar is None:
                self.close()
                raise ValueError("llama.cpp rejected the grammar")

    @property
    def changes_logits(self) -> bool:
        return self.penalties is not None or self.bias_ids is not None

    def adjust(self, logits: np.ndarray) -> np.ndarray:
        """Logits after the logit bias and llama.cpp's penalties (a copy; the model's stay as they are)."""
        if not self.changes_logits:
            return logits
        self._data["logit"] = logits
        if self.bias_ids is not None:
            self._data["logit"][self.bias_ids] += self.bias_values
        if self.penalties is not None:
            self._reset(self._array, len(self._data))
            self.L.llama_sampler_apply(self.penalties, ctypes.byref(self._array))
        return self._data["logit"].copy()

    def grammar_allows(self, token: int) -> bool:
        self._one[0].id, self._one[0].logit, self._one[0].p = token, 0.0, 0.0
        self._reset(self._one_array, 1)
        self.L.llama_sampler_apply(self.grammar, ctypes.byref(self._one_array))
        return self._one[0].logit != float("-inf")

    def grammar_mask(self, logits: np.ndarray) -> np.ndarray:
        self._data["logit"] = logits
        self._reset(self._array, len(self._data))
        self.L.llama_sampler_apply(self.grammar, ctypes.byref(self._array))
        return self._data["logit"].copy()

    def accept(self, token: int, *, grammar: bool) -> None:
        if self.penalties is not None:
            self.L.llama_sampler_accept(self.penalties, token)
        if grammar and self.grammar is not None:
            self.L.llama_sampler_accept(self.grammar, token)

    @staticmethod
    def _reset(array, size: int) -> None:
        array.size, array.selected, array.sorted = size, -1, False

    def close(self) -> None:
        for sampler in (self.penalties, self.grammar):
            if sampler is not None:
                self.L.llama_sampler_free(sampler)
        self.penalties = self.grammar = None
