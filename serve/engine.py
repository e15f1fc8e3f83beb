"""Continuous batching over llama.cpp: several sequences decode together in one `llama_decode` call.

One context holds `parallel` sequences (slots), each with its own KV cache of `ctx` tokens. A single
engine thread loops: admit queued requests into free slots (first come, first served), put every
active slot's next tokens into one batch (a new slot's prompt, or one sampled token), decode once,
then sample each slot (numpy, exact top-p with a partial sort; see sample_token). A cancelled request (a client that went
away) frees its slot before the next step.

Reasoning is tracked per slot with the shared :class:`~r1_distill.reasoning.ReasoningStreamParser`.
A thinking budget closes the thinking by injecting ``\\n</think>\\n\\n`` once the slot has produced
that many reasoning tokens; s1's budget forcing does the opposite, replacing an early ``</think>``
with "Wait" up to N times.
"""

from __future__ import annotations

import codecs
import ctypes
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from r1_distill.errors import UserError
from r1_distill.reasoning import ReasoningStreamParser

CLOSE_THINKING = "\n</think>\n\n"


class QueueFull(Exception):
    pass


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


@dataclass
class GenerationRequest:
    prompt_tokens: list[int]
    max_tokens: int
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    thinking: bool = True  # the prompt opened the thinking (template-forced "<think>\n")
    thinking_budget: int | None = None
    wait_forcing: int = 0  # s1: replace an early </think> with "Wait" this many times
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])


@dataclass
class Event:
    kind: str  # "reasoning" | "answer" | "raw" | "done"
    text: str = ""
    finish_reason: str | None = None
    usage: dict | None = None


class _Slot:
    def __init__(self, seq_id: int):
        self.seq_id = seq_id
        self.request: GenerationRequest | None = None
        self.emit: Callable[[Event], None] | None = None
        self.cancelled = threading.Event()

    def start(self, request, emit, engine: "BatchEngine") -> None:
        self.request, self.emit = request, emit
        self.cancelled = threading.Event()
        self.pending = list(request.prompt_tokens)  # tokens to feed before the next sample
        self.n_past = 0
        self.generated = 0
        self.reasoning_tokens = 0
        self.waits_left = request.wait_forcing
        self.parser = ReasoningStreamParser(assume_thinking=request.thinking)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self.emitted_upto = 0  # characters of self.text already sent (the rest may be a stop prefix)
        self.budget_spent = False
        self.started = time.perf_counter()
        self.first_token_at: float | None = None
        self.rng = engine._make_rng(request)

    @property
    def busy(self) -> bool:
        return self.request is not None


class BatchEngine:
    def __init__(self, model_path: str, *, parallel: int = 4, ctx: int = 4096, threads: int | None = None,
                 max_queue: int = 64, n_batch: int = 512, verbose: bool = False):
        import llama_cpp as L
        from llama_cpp._logger import set_verbose

        set_verbose(verbose)  # llama.cpp's load log goes through llama-cpp-python's logger
        self.L = L
        self.parallel, self.ctx_per_slot, self.max_queue, self.n_batch = parallel, ctx, max_queue, n_batch
        L.llama_backend_init()
        mparams = L.llama_model_default_params()
        self.model = L.llama_model_load_from_file(model_path.encode(), mparams)
        if not self.model:
            raise UserError(f"llama.cpp could not load {model_path}: is it a GGUF model file?")
        self.vocab = L.llama_model_get_vocab(self.model)
        cparams = L.llama_context_default_params()
        cparams.n_ctx = ctx * parallel
        cparams.n_seq_max = parallel
        cparams.n_batch = max(n_batch, parallel)
        cparams.n_ubatch = max(n_batch, parallel)
        cparams.kv_unified = False
        if threads:
            cparams.n_threads = cparams.n_threads_batch = threads
        self.ctx = L.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise UserError(f"llama.cpp could not create a context of {ctx} x {parallel} tokens: lower --ctx or --parallel")
        self.memory = L.llama_get_memory(self.ctx)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.metadata = self._read_metadata()
        self.batch = L.llama_batch_init(max(n_batch, parallel), 0, 1)
        self.slots = [_Slot(i) for i in range(parallel)]
        self.waiting: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = False
        self.stats = {"decode_calls": 0, "tokens_generated": 0, "prompt_tokens": 0, "cancelled": 0}
        think_close = self.tokenize("</think>", special=True)
        self.think_close_token = think_close[0] if len(think_close) == 1 else None
        self.thread = threading.Thread(target=self._loop, name="r1-distill-engine", daemon=True)
        self.thread.start()

    # -- model facts ------------------------------------------------------------------------------
    def _read_metadata(self) -> dict[str, str]:
        L = self.L
        out = {}
        buf = ctypes.create_string_buffer(1 << 20)
        for i in range(L.llama_model_meta_count(self.model)):
            key_len = L.llama_model_meta_key_by_index(self.model, i, buf, len(buf))
            key = buf.value[:key_len].decode("utf-8", "replace")
            val_len = L.llama_model_meta_val_str_by_index(self.model, i, buf, len(buf))
            out[key] = buf.value[:val_len].decode("utf-8", "replace")
        return out

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        L = self.L
        data = text.encode("utf-8")
        n_max = len(data) + 16
        arr = (L.llama_token * n_max)()
        n = L.llama_tokenize(self.vocab, data, len(data), arr, n_max, False, special)
        if n < 0:
            arr = (L.llama_token * -n)()
            n = L.llama_tokenize(self.vocab, data, len(data), arr, -n, False, special)
        return list(arr[:n])

    def token_bytes(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = self.L.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        return buf.raw[:n] if n > 0 else b""

    def token_text(self, token: int) -> str:
        return self.token_bytes(token).decode("utf-8", "replace")

    def is_eog(self, token: int) -> bool:
        return bool(self.L.llama_vocab_is_eog(self.vocab, token))

    # -- requests ---------------------------------------------------------------------------------
    def queue_length(self) -> int:
        return self.waiting.qsize()

    def busy_slots(self) -> int:
        return sum(s.busy for s in self.slots)

    def submit(self, request: GenerationRequest, emit: Callable[[Event], None]) -> Callable[[], None]:
        """Queue a request; `emit` is called from the engine thread. Returns a cancel function."""
        if len(request.prompt_tokens) >= self.ctx_per_slot:
            raise UserError(f"the prompt has {len(request.prompt_tokens)} tokens; the context is {self.ctx_per_slot}")
        if self.waiting.qsize() >= self.max_queue:
            raise QueueFull()
        cancelled = threading.Event()
        self.waiting.put((request, emit, cancelled))
        self.wake.set()

        def cancel() -> None:
            cancelled.set()
            for slot in self.slots:
                if slot.request is request:
                    slot.cancelled.set()
            self.wake.set()

        return cancel

    def close(self) -> None:
        self.stopping = True
        self.wake.set()
        self.thread.join(timeout=10)
        L = self.L
        L.llama_batch_free(self.batch)
        L.llama_free(self.ctx)
        L.llama_model_free(self.model)

    # -- the loop ---------------------------------------------------------------------------------
    def _make_rng(self, r: GenerationRequest) -> np.random.Generator:
        seed = r.seed if r.seed is not None else int.from_bytes(uuid.uuid4().bytes[:4], "little")
        return np.random.default_rng(seed)

    def _admit(self) -> None:
        for slot in self.slots:
            if slot.busy:
                continue
            while True:
                try:
                    request, emit, cancelled = self.waiting.get_nowait()
                except queue.Empty:
                    return
                if cancelled.is_set():
                    self.stats["cancelled"] += 1
                    continue
                slot.start(request, emit, self)
                break

    def _release(self, slot: _Slot) -> None:
        self.L.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
        slot.request = slot.emit = None

    def _finish(self, slot: _Slot, reason: str) -> None:
        tail = slot.decoder.decode(b"", final=True)
        slot.text += tail
        self._flush_text(slot, final=True)
        for kind, text in slot.parser.finish():
            slot.emit(Event(kind, text))
        r = slot.request
        usage = {
            "prompt_tokens": len(r.prompt_tokens), "completion_tokens": slot.generated,
            "total_tokens": len(r.prompt_tokens) + slot.generated, "reasoning_tokens": slot.reasoning_tokens,
            "time_to_first_token_s": (slot.first_token_at or time.perf_counter()) - slot.started,
            "duration_s": time.perf_counter() - slot.started,
        }
        slot.emit(Event("done", finish_reason=reason, usage=usage))
        self._release(slot)

    def _loop(self) -> None:
        while not self.stopping:
            with self.lock:
                self._admit()
                active = [s for s in self.slots if s.busy]
                for slot in active:
                    if slot.cancelled.is_set():
                        self.stats["cancelled"] += 1
                        self._release(slot)
                active = [s for s in self.slots if s.busy]
                if not active:
                    self.wake.clear()
            if not active:
                self.wake.wait(timeout=0.5)
                continue
            try:
                self._step(active)
            except Exception as exc:  # never leave clients hanging
                for slot in active:
                    if slot.busy:
                        slot.emit(Event("done", finish_reason="error", usage={"error": str(exc)}))
                        self._release(slot)

    def _step(self, active: list[_Slot]) -> None:
        L, batch = self.L, self.batch
        capacity = max(self.n_batch, self.parallel)
        n = 0
        sample_at: dict[int, int] = {}
        # decoding slots first (one token each), then prompt chunks in the room left
        for slot in sorted(active, key=lambda s: len(s.pending) > 1):
            room = capacity - n
            if room <= 0:
                break
            chunk = slot.pending[:room]
            for i, token in enumerate(chunk):
                batch.token[n] = token
                batch.pos[n] = slot.n_past + i
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = slot.seq_id
                batch.logits[n] = False
                n += 1
            slot.n_past += len(chunk)
            del slot.pending[: len(chunk)]
            if not slot.pending:  # this slot's input is all in: sample from its last position
                batch.logits[n - 1] = True
                sample_at[slot.seq_id] = n - 1
        batch.n_tokens = n
        code = L.llama_decode(self.ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")
        self.stats["decode_calls"] += 1
        for slot in active:
            if slot.seq_id in sample_at:
                self._sample(slot, sample_at[slot.seq_id])

    def _sample(self, slot: _Slot, index: int) -> None:
        r = slot.request
        logits = np.ctypeslib.as_array(self.L.llama_get_logits_ith(self.ctx, index), shape=(self.n_vocab,))
        token = sample_token(logits, r.temperature, r.top_p, r.top_k, slot.rng)
        if slot.first_token_at is None:
            slot.first_token_at = time.perf_counter()
        self.stats["tokens_generated"] += 1
        slot.generated += 1
        in_thinking = not slot.parser.thinking_closed and slot.parser.state != "answer"
        if in_thinking:
            slot.reasoning_tokens += 1
        if self.is_eog(token):
            return self._finish(slot, "stop")
        if token == self.think_close_token and in_thinking and slot.waits_left > 0:
            slot.waits_left -= 1  # s1 budget forcing: keep thinking
            forced = self.tokenize("\nWait", special=False)
            self._feed_forced(slot, forced, "\nWait")
        else:
            slot.pending.append(token)
            self._add_text(slot, slot.decoder.decode(self.token_bytes(token)))
        if not slot.busy:
            return
        if (r.thinking_budget is not None and in_thinking and not slot.budget_spent
                and slot.reasoning_tokens >= r.thinking_budget and not slot.parser.thinking_closed):
            slot.budget_spent = True
            self._feed_forced(slot, self.tokenize(CLOSE_THINKING, special=True), CLOSE_THINKING)
        if slot.busy and slot.generated >= r.max_tokens:
            self._finish(slot, "length")
        elif slot.busy and slot.n_past + len(slot.pending) >= self.ctx_per_slot:
            self._finish(slot, "length")

    def _feed_forced(self, slot: _Slot, tokens: list[int], text: str) -> None:
        slot.pending.extend(tokens)
        self._add_text(slot, text)

    def _add_text(self, slot: _Slot, text: str) -> None:
        if not text:
            return
        slot.text += text
        stops = slot.request.stop
        if stops:
            hits = [slot.text.find(s, max(0, slot.emitted_upto - len(s))) for s in stops]
            hits = [h for h in hits if h >= 0]
            if hits:
                slot.text = slot.text[: min(hits)]
                self._flush_text(slot, final=True)
                return self._finish(slot, "stop")
        self._flush_text(slot, final=False)

    def _flush_text(self, slot: _Slot, *, final: bool) -> None:
        upto = len(slot.text)
        if not final and slot.request.stop:  # hold back what could be the start of a stop string
            longest = max(len(s) for s in slot.request.stop)
            for k in range(min(longest - 1, upto - slot.emitted_upto), 0, -1):
                if any(s.startswith(slot.text[upto - k:]) for s in slot.request.stop):
                    upto -= k
                    break
        fresh = slot.text[slot.emitted_upto: upto]
        slot.emitted_upto = upto
        if fresh:
            slot.emit(Event("raw", fresh))
            for kind, text in slot.parser.feed(fresh):
                slot.emit(Event(kind, text))
