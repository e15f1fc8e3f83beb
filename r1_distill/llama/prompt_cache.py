"""Prompts evicted from a slot, kept in RAM (as llama-server's --cache-ram does): when a slot is about to
overwrite a long cached prompt, its sequence state (``llama_state_seq_get_data``) is saved here; a later
request sharing more of its prefix with a saved prompt than with any free slot gets it restored
(``llama_state_seq_set_data``) instead of prefilling again."""

from __future__ import annotations

import ctypes
from collections import OrderedDict

MIN_TOKENS = 256  # shorter prompts are cheaper to prefill again than to keep


class PromptCache:
    def __init__(self, L, ctx, limit_bytes: int = 1 << 30):
        self.L, self.ctx, self.limit = L, ctx, limit_bytes
        self.entries: OrderedDict[int, tuple[list[int], ctypes.Array]] = OrderedDict()
        self.used = 0
        self._next = 0

    def save_before_overwrite(self, seq_id: int, tokens: list[int], keep: int) -> None:
        """A slot holding `tokens` is about to keep only the first `keep`: when most of them go, save them."""
        if keep < len(tokens) // 2:
            self.save(seq_id, tokens)

    def save(self, seq_id: int, tokens: list[int]) -> None:
        if len(tokens) < MIN_TOKENS or self.limit <= 0:
            return
        size = self.L.llama_state_seq_get_size(self.ctx, seq_id)
        if size <= 0 or size > self.limit:
            return
        buf = (ctypes.c_uint8 * size)()
        if self.L.llama_state_seq_get_data(self.ctx, buf, size, seq_id) != size:
            return
        while self.entries and self.used + size > self.limit:
            _, (_, old) = self.entries.popitem(last=False)
            self.used -= len(old)
        self.entries[self._next] = (list(tokens), buf)
        self._next += 1
        self.used += size

    def best(self, prompt: list[int], common_prefix) -> tuple[int | None, int]:
        """The saved prompt sharing the longest prefix with `prompt`: (key, shared tokens)."""
        best_key, best_len = None, 0
        for key, (tokens, _) in self.entries.items():
            n = common_prefix(tokens, prompt)
            if n > best_len:
                best_key, best_len = key, n
        return best_key, best_len

    def restore(self, key: int, seq_id: int) -> list[int] | None:
        """Load a saved prompt into `seq_id` (emptied first); its tokens, or None if llama.cpp refused."""
        tokens, buf = self.entries.pop(key)
        self.used -= len(buf)
        self.L.llama_memory_seq_rm(self.L.llama_get_memory(self.ctx), seq_id, -1, -1)
        if self.L.llama_state_seq_set_data(self.ctx, buf, len(buf), seq_id) != len(buf):
            self.L.llama_memory_seq_rm(self.L.llama_get_memory(self.ctx), seq_id, -1, -1)
            return None
        return tokens
