"""Prompts evicted from a slot, kept in RAM (as llama-server's --cache-ram does): when a slot is about to
overwrite a cached prompt, its sequence state (``llama_state_seq_get_data``) is saved here; a later
request sharing more of its prefix with a saved prompt than with any free slot gets it restored
(``llama_state_seq_set_data``) instead of prefilling again.

Short prompts are kept too (from `MIN_TOKENS`): a prompt served before, pushed out of its slot by a
burst of other requests, comes back in a millisecond instead of a prefill (llama-server keeps every
prompt; without this, a short prompt seen before waited 4-5x longer than on llama-server for its first
token). The saved bytes go into uninitialised numpy buffers (a ctypes array is zero-filled first: tens
of MB written twice, in the request's path), and a prompt already covered by a saved one is not saved
again."""

from __future__ import annotations

import ctypes
import time
from collections import OrderedDict

import numpy as np

MIN_TOKENS = 16  # shorter prompts are cheaper to prefill again than to keep
RESTORE_GAIN = 8  # a restore must spare at least this many tokens of prefill ...
RESTORE_SHARE = 32  # ... and 1/32 of the tokens it loads (a 2k-token state to spare 10 tokens is a loss)
MAX_ENTRIES = 512  # bounds the search for the best match (each a vectorised prefix comparison)


def shared_prefix(saved: np.ndarray, prompt: np.ndarray) -> int:
    n = min(saved.size, prompt.size)
    if n == 0 or saved[0] != prompt[0]:
        return 0
    diff = np.flatnonzero(saved[:n] != prompt[:n])
    return int(diff[0]) if diff.size else n


class PromptCache:
    def __init__(self, L, ctx, limit_bytes: int = 1 << 30):
        self.L, self.ctx, self.limit = L, ctx, limit_bytes
        self.entries: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()  # key: (tokens, state)
        self.used = 0
        self._next = 0
        self.saves = 0
        self.save_seconds = 0.0

    def save_before_overwrite(self, seq_id: int, tokens: list[int], keep: int) -> None:
        """A slot holding `tokens` is about to keep only the first `keep`: when most of them go, save them."""
        if keep < len(tokens) // 2:
            self.save(seq_id, tokens)

    def save(self, seq_id: int, tokens: list[int]) -> None:
        if len(tokens) < MIN_TOKENS or self.limit <= 0:
            return
        start = time.perf_counter()
        self._save(seq_id, tokens)
        self.save_seconds += time.perf_counter() - start

    def _save(self, seq_id: int, tokens: list[int]) -> None:
        ids = np.asarray(tokens, dtype=np.int32)
        if not self._drop_covered(ids):
            return  # a saved prompt already holds these tokens (and maybe more)
        size = self.L.llama_state_seq_get_size(self.ctx, seq_id)
        if size <= 0 or size > self.limit:
            return
        buf = np.empty(size, dtype=np.uint8)
        if self.L.llama_state_seq_get_data(self.ctx, self._ptr(buf), size, seq_id) != size:
            return
        while self.entries and (self.used + size > self.limit or len(self.entries) >= MAX_ENTRIES):
            self._pop(next(iter(self.entries)))
        self.entries[self._next] = (ids, buf)
        self._next += 1
        self.used += size
        self.saves += 1

    def _drop_covered(self, ids: np.ndarray) -> bool:
        """False if a saved prompt starts with `ids`; otherwise drops saved prompts that `ids` extends."""
        for key, (saved, _) in list(self.entries.items()):
            shared = shared_prefix(saved, ids)
            if shared == ids.size:
                self.entries.move_to_end(key)  # used again: the last to be dropped
                return False
            if shared == saved.size:
                self._pop(key)
        return True

    def best(self, prompt: list[int], common_prefix=None) -> tuple[int | None, int]:
        """The saved prompt sharing the longest prefix with `prompt`: (key, shared tokens)."""
        ids = np.asarray(prompt, dtype=np.int32)
        best_key, best_len = None, 0
        for key, (saved, _) in self.entries.items():
            n = shared_prefix(saved, ids)
            if n > best_len:
                best_key, best_len = key, n
        return best_key, best_len

    def worth_restoring(self, key: int, gain: int) -> bool:
        """Whether loading saved prompt `key` beats prefilling the `gain` tokens it would spare."""
        return gain >= RESTORE_GAIN and gain * RESTORE_SHARE >= self.entries[key][0].size

    def restore(self, key: int, seq_id: int) -> list[int] | None:
        """Load a saved prompt into `seq_id` (emptied first); its tokens, or None if llama.cpp refused."""
        tokens, buf = self._pop(key)
        memory = self.L.llama_get_memory(self.ctx)
        self.L.llama_memory_seq_rm(memory, seq_id, -1, -1)
        if self.L.llama_state_seq_set_data(self.ctx, self._ptr(buf), buf.size, seq_id) != buf.size:
            self.L.llama_memory_seq_rm(memory, seq_id, -1, -1)
            return None
        return tokens.tolist()

    def _pop(self, key: int) -> tuple[np.ndarray, np.ndarray]:
        tokens, buf = self.entries.pop(key)
        self.used -= buf.size
        return tokens, buf

    @staticmethod
    def _ptr(buf: np.ndarray):
        return buf.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
