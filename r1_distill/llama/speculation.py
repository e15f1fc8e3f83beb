"""Speculative decoding's drafters: cheap guesses of a sequence's next tokens that the target checks in one pass.

Decoding one stream is bound by reading the weights once a token; checking several drafted tokens in one
batched decode costs about as much as one, so every accepted draft is a token for free. Two drafters:

* :class:`PromptLookup` (``serve --lookup N``): the tokens that followed the latest earlier occurrence of
  the sequence's last n-gram (prompt or output), as llama.cpp's n-gram lookup; free to make, good on long
  reasoning that repeats itself and on answers that quote the prompt.
* :class:`DraftModel` (``serve --draft FILE.gguf``): a smaller model with the same vocabulary decoded
  greedily, as llama-server's ``-md``; it stops drafting where its own top probability falls below
  ``p_min`` (llama-server's ``--spec-draft-p-min``).

The engine verifies (see :meth:`BatchEngine._verify`): the target samples at each drafted position with the
request's own sampler and a draft is accepted while the sampled token is the drafted one. A draft is one
token (a point mass), so this is speculative sampling's rule exactly: accepting draft d with probability
p(d) and otherwise sampling from p with d removed is sampling from p. Greedy and sampled requests get the
plain decode's distribution, and a seeded request the same draws from its generator.
"""

from __future__ import annotations

import numpy as np

from r1_distill.errors import UserError

# llama.cpp's common_speculative_are_compatible allows vocabularies this much apart (added tokens at the end)
VOCAB_SIZE_SLACK = 128


class PromptLookup:
    """Drafts by n-gram lookup in the sequence itself: the longest of the last `ngram_max`..1 tokens that
    occurred before, and what followed its latest earlier occurrence."""

    def __init__(self, ngram_max: int = 3):
        self.ngram_max = ngram_max

    def draft(self, wanted: dict[int, tuple[list[int], int]]) -> dict[int, list[int]]:
        return {seq: found for seq, (tokens, n) in wanted.items() if (found := self.lookup(tokens, n))}

    def lookup(self, tokens: list[int], n: int) -> list[int]:
        arr = np.asarray(tokens, dtype=np.int64)
        for size in range(min(self.ngram_max, arr.size - 1), 0, -1):
            tail = arr[-size:]
            # starts of earlier occurrences of the tail (the tail itself excluded)
            hits = np.flatnonzero(arr[: arr.size - size] == tail[0])
            for k in range(1, size):
                hits = hits[arr[hits + k] == tail[k]]
            if hits.size:
                # the latest occurrence with n tokens after it; else the earliest (in a loop, the latest
                # occurrence ends where the sequence does and has one token after it)
                whole = hits[hits + size + n <= arr.size]
                start = int(whole[-1] if whole.size else hits[0]) + size
                return [int(t) for t in arr[start: start + n]]
        return []

    def close(self) -> None:
        pass


def check_same_vocabulary(L, target_vocab, draft_vocab, draft_path: str) -> None:
    """A draft must tokenize as the target does: the same kind of vocabulary, the same special tokens and
    the same text for every token id both have (llama.cpp's rule); otherwise a UserError names the first
    difference."""
    fix = "a draft must share the model's vocabulary: a smaller model of the same family or the model's own smaller quant"
    if L.llama_vocab_type(target_vocab) != L.llama_vocab_type(draft_vocab):
        raise UserError(f"--draft {draft_path}: its vocabulary is of another kind than the model's; {fix}")
    n_target, n_draft = L.llama_vocab_n_tokens(target_vocab), L.llama_vocab_n_tokens(draft_vocab)
    if abs(n_target - n_draft) > VOCAB_SIZE_SLACK:
        raise UserError(f"--draft {draft_path}: its vocabulary has {n_draft} tokens, the model's {n_target}; {fix}")
    for name in ("bos", "eos"):
        a, b = getattr(L, f"llama_vocab_{name}")(target_vocab), getattr(L, f"llama_vocab_{name}")(draft_vocab)
        if a != b:
            raise UserError(f"--draft {draft_path}: its {name.upper()} token is {b}, the model's {a}; {fix}")
    for token in range(min(n_target, n_draft)):
        a, b = L.llama_vocab_get_text(target_vocab, token), L.llama_vocab_get_text(draft_vocab, token)
        if a != b:
            raise UserError(f"--draft {draft_path}: token {token} is {b!r} there and {a!r} in the model; {fix}")


def check_draft_vocabulary(model_path: str, draft_path: str) -> None:
    """Both files' vocabularies only (no weights): a UserError if the draft's differs."""
    import llama_cpp as L

    L.llama_backend_init()
    params = L.llama_model_default_params()
    params.vocab_only = True
    models = [L.llama_model_load_from_file(str(p).encode(), params) for p in (model_path, draft_path)]
    try:
        for path, model in zip((model_path, draft_path), models):
            if not model:
                raise UserError(f"llama.cpp could not read {path}: is it a GGUF model file?")
        check_same_vocabulary(L, L.llama_model_get_vocab(models[0]), L.llama_model_get_vocab(models[1]), draft_path)
    finally:
        for model in models:
            if model:
                L.llama_model_free(model)


class DraftModel:
    """A smaller GGUF beside the target, one sequence per slot, drafting greedily for every decoding slot
    in one batched decode a draft token. Its KV cache follows each slot's tokens by common prefix."""

    def __init__(self, L, path: str, target_vocab, *, parallel: int, ctx: int, threads: int, p_min: float,
                 n_batch: int = 2048):
        from .engine import common_prefix

        self.L, self.p_min, self.common_prefix = L, p_min, common_prefix
        self.model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
        if not self.model:
            raise UserError(f"--draft {path}: llama.cpp could not load it: is it a GGUF model file?")
        try:
            self.vocab = L.llama_model_get_vocab(self.model)
            check_same_vocabulary(L, target_vocab, self.vocab, path)
            self.n_target_vocab = L.llama_vocab_n_tokens(target_vocab)
            cparams = L.llama_context_default_params()
            cparams.n_ctx, cparams.n_seq_max, cparams.kv_unified = ctx * parallel, parallel, False
            cparams.n_batch = cparams.n_ubatch = self.n_batch = max(n_batch, parallel)
            cparams.n_threads = cparams.n_threads_batch = threads
            self.ctx = L.llama_init_from_model(self.model, cparams)
            if not self.ctx:
                raise UserError(f"--draft {path}: llama.cpp could not create its context of {ctx} x {parallel} tokens")
        except BaseException:
            L.llama_model_free(self.model)
            raise
        self.memory = L.llama_get_memory(self.ctx)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.batch = L.llama_batch_init(self.n_batch, 0, 1)
        self.cached: list[list[int]] = [[] for _ in range(parallel)]  # what each sequence's KV cache holds

    def draft(self, wanted: dict[int, tuple[list[int], int]]) -> dict[int, list[int]]:
        """For each sequence id: its tokens so far (the last not yet decoded by the target) and how many to
        draft at most. Returns the drafts, possibly empty."""
        drafts: dict[int, list[int]] = {seq: [] for seq in wanted}
        last_logits = self._catch_up(wanted)
        while last_logits:
            nxt: list[tuple[int, list[int]]] = []
            for seq, logits in last_logits.items():
                token = self._confident_token(logits)
                if token is None:
                    continue
                drafts[seq].append(token)
                if len(drafts[seq]) < wanted[seq][1]:
                    nxt.append((seq, [token]))
            last_logits = self._decode(nxt)
        return {seq: d for seq, d in drafts.items() if d}

    def _confident_token(self, logits: np.ndarray) -> int | None:
        token = int(np.argmax(logits))
        p = 1.0 / float(np.exp(logits.astype(np.float64) - float(logits[token])).sum())
        if p < self.p_min or token >= self.n_target_vocab:
            return None
        return token

    def _catch_up(self, wanted: dict[int, tuple[list[int], int]]) -> dict[int, np.ndarray]:
        """Bring each sequence's KV cache to its tokens (dropping what differs) and decode its last token."""
        feeds = []
        for seq, (tokens, _) in wanted.items():
            have = self.cached[seq]
            keep = min(self.common_prefix(have, tokens), len(tokens) - 1)
            if keep < len(have):
                self.L.llama_memory_seq_rm(self.memory, seq, keep, -1)
                del have[keep:]
            feeds.append((seq, tokens[keep:]))
        return self._decode(feeds)

    def _decode(self, feeds: list[tuple[int, list[int]]]) -> dict[int, np.ndarray]:
        """Feed each sequence its tokens (in batches of n_batch); returns the logits after each one's last."""
        L, batch = self.L, self.batch
        out: dict[int, np.ndarray] = {}
        queue = [(seq, tokens) for seq, tokens in feeds if tokens]
        while queue:
            n, rest, last = 0, [], {}
            for seq, tokens in queue:
                take = tokens[: self.n_batch - n]
                for i, token in enumerate(take):
                    batch.token[n], batch.pos[n] = token, len(self.cached[seq]) + i
                    batch.n_seq_id[n], batch.seq_id[n][0], batch.logits[n] = 1, seq, False
                    n += 1
                self.cached[seq].extend(take)
                if len(take) == len(tokens):
                    batch.logits[n - 1] = True
                    last[seq] = n - 1
                elif take:
                    rest.append((seq, tokens[len(take):]))
                else:
                    rest.append((seq, tokens))
            batch.n_tokens = n
            if L.llama_decode(self.ctx, batch) != 0:
                self._forget()
                raise RuntimeError("the draft model's llama_decode failed")
            for seq, index in last.items():
                out[seq] = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, index), shape=(self.n_vocab,)).copy()
            queue = rest
        return out

    def _forget(self) -> None:
        """After a failed decode the caches' contents are unknown: start every sequence over."""
        for seq, tokens in enumerate(self.cached):
            self.L.llama_memory_seq_rm(self.memory, seq, -1, -1)
            tokens.clear()

    def close(self) -> None:
        self.L.llama_batch_free(self.batch)
        self.L.llama_free(self.ctx)
        self.L.llama_model_free(self.model)
