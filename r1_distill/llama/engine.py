"""Continuous batching over llama.cpp: several sequences decode together in one `llama_decode` call.

One context holds `parallel` sequences (slots), each with its own KV cache of `ctx` tokens. A single
engine thread loops: admit queued requests into free slots (first come, first served; each into the
free slot that costs least: its prompt's tokens left to prefill plus a tenth of the cached tokens it
would drop, so a chat's history or a repeated system prompt is not prefilled again and a long prompt is
not pushed out while an empty or short slot is free), put every active slot's next tokens into one batch
(one sampled token per decoding slot first, then prompt chunks, oldest request first), decode once,
then sample each slot (see :mod:`.sampling`). A cancelled request (a client that went away) frees
its slot before the next step, also when the cancel lands while the request moves from queue to slot.

Nothing a request carries can stop the loop: an error while starting or sampling a request ends that
request with ``finish_reason="error"``; an error in a decode ends the requests in that batch. If the
thread dies anyway, every waiting and running request is ended with an error, `failure` says why,
later submits raise :class:`EngineFailed` at once, and ``on_failure`` is called (the server restarts
the engine).

A slot's text (stop strings, the hold-back of a partial one, the reasoning/answer split with the shared
:class:`~r1_distill.reasoning.ReasoningStreamParser`) is a :class:`~.text_stream.TextStream`.
A thinking budget closes the thinking by injecting ``\\n</think>\\n\\n`` once the slot has produced
that many reasoning tokens; s1's budget forcing does the opposite, replacing an early ``</think>``
with "Wait" up to N times. A request with a :class:`~.loop_guard.LoopGuard` has its thinking closed
the same way when the thinking starts repeating itself (``thinking_closed`` in its usage: "loop").

Speculative decoding (a :class:`Speculation`: a draft model or prompt lookup, see :mod:`.speculation`):
each decoding slot's drafted tokens go into the same batch as its next token, with logits at every
position; the slot then samples position by position and keeps the drafts it sampled, so the output
is the plain decode's. Drafted and accepted counts are in ``stats`` and each request's usage.
"""

from __future__ import annotations

import ctypes
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from r1_distill.errors import UserError

from .loop_guard import LoopDetector, LoopGuard
from .prompt_cache import PromptCache
from .sampling import LlamaSamplers, Penalties, log_softmax, sample_token, top_logprobs
from .speculation import DraftModel, PromptLookup
from .text_stream import TextStream
from .threads import physical_cores

CLOSE_THINKING = "\n</think>\n\n"


@dataclass
class Speculation:
    """Speculative decoding's settings: a draft model's GGUF or prompt lookup (not both)."""
    draft_model: str | None = None
    lookup: int = 0  # draft this many tokens by prompt lookup (0: off)
    draft_max: int = 3  # a draft model's tokens a step at most (llama-server's --spec-draft-n-max)
    draft_p_min: float = 0.0  # a draft model stops where its top probability is lower (--spec-draft-p-min)

    def check(self) -> None:
        """The settings refused in one line (the server checks them before it starts, the engine when built)."""
        if self.draft_model and self.lookup:
            raise UserError("--draft and --lookup are two ways of drafting: give one of them")
        if self.lookup < 0 or self.draft_max < 1 or not 0.0 <= self.draft_p_min <= 1.0:
            raise UserError("--lookup must be 0 or more, --draft-max at least 1 and --draft-p-min between 0 and 1")


class QueueFull(Exception):
    pass


class EngineFailed(Exception):
    pass


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
    logprobs: int | None = None  # None: off; N: the sampled token's logprob and the N most likely
    penalties: Penalties | None = None
    logit_bias: dict[int, float] | None = None
    min_tokens: int = 0  # end-of-generation tokens are masked until this many are generated (vLLM's min_tokens)
    grammar: str | None = None  # GBNF for the answer (after the thinking)
    loop_guard: LoopGuard | None = None  # close the thinking when it repeats itself (None: never)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])


@dataclass
class Event:
    kind: str  # "reasoning" | "answer" | "raw" | "logprob" | "done"
    text: str = ""
    finish_reason: str | None = None
    usage: dict | None = None
    data: dict | None = None  # "logprob": {"token", "bytes", "logprob", "top", "part"}


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(diff[0]) if diff.size else n


class _Slot:
    def __init__(self, seq_id: int):
        self.seq_id = seq_id
        self.request: GenerationRequest | None = None
        self.emit: Callable[[Event], None] | None = None
        self.cancelled = threading.Event()
        self.cached: list[int] = []  # the tokens this slot's KV cache holds, in order
        self.last_used = 0.0
        self.samplers: LlamaSamplers | None = None
        # the running request's state, set by start()
        self.reused = self.n_past = self.generated = self.reasoning_tokens = self.waits_left = 0
        self.pending: list[int] = []  # tokens to feed before the next sample
        self.stream: TextStream | None = None
        self.budget_spent = False
        self.thinking_closed_by: str | None = None  # "budget" | "loop": the engine closed the thinking
        self.loop: LoopDetector | None = None
        self.started = self.admitted = 0.0
        self.first_token_at: float | None = None
        self.rng: np.random.Generator | None = None
        self.drafted = self.accepted = 0

    def start(self, request: GenerationRequest, emit, cancelled: threading.Event, engine: "BatchEngine") -> None:
        self.request, self.emit, self.cancelled = request, emit, cancelled
        prompt = request.prompt_tokens
        reuse = min(common_prefix(self.cached, prompt), len(prompt) - 1)  # at least one token to decode
        engine.prompt_cache.save_before_overwrite(self.seq_id, self.cached, reuse)
        if reuse < len(self.cached):
            engine.L.llama_memory_seq_rm(engine.memory, self.seq_id, reuse, -1)
            del self.cached[reuse:]
        self.reused = reuse
        self.pending = list(prompt[reuse:])  # tokens to feed before the next sample
        self.n_past = reuse
        self.generated = 0
        self.reasoning_tokens = 0
        self.waits_left = request.wait_forcing
        self.stream = TextStream(request.stop, thinking=request.thinking)
        self.budget_spent = False
        self.thinking_closed_by = None
        self.loop = LoopDetector(request.loop_guard) if request.loop_guard is not None else None
        self.started = self.admitted = time.perf_counter()
        self.first_token_at: float | None = None
        self.rng = np.random.default_rng(request.seed if request.seed is not None else None)
        self.samplers = None
        self.drafted = self.accepted = 0
        if request.penalties is not None or request.grammar or request.logit_bias:
            self.samplers = LlamaSamplers(engine.L, engine.vocab, engine.n_vocab, penalties=request.penalties,
                                          gbnf=request.grammar, logit_bias=request.logit_bias)

    @property
    def busy(self) -> bool:
        return self.request is not None

    def in_thinking(self) -> bool:
        return self.stream.in_thinking(self.request.thinking)


class BatchEngine:
    def __init__(self, model_path: str, *, parallel: int = 4, ctx: int = 4096, threads: int | None = None,
                 max_queue: int = 64, n_batch: int = 2048, n_ubatch: int = 512, verbose: bool = False,
                 on_failure: Callable[[str], None] | None = None, prompt_cache_bytes: int = 1 << 30,
                 speculation: Speculation | None = None):
        import llama_cpp as L
        from llama_cpp._logger import set_verbose

        set_verbose(verbose)  # llama.cpp's load log goes through llama-cpp-python's logger
        self.L = L
        self.parallel, self.ctx_per_slot, self.max_queue = parallel, ctx, max_queue
        self.n_batch = max(n_batch, parallel)
        self.threads = threads or physical_cores()
        self.on_failure = on_failure
        L.llama_backend_init()
        mparams = L.llama_model_default_params()
        self.model = L.llama_model_load_from_file(model_path.encode(), mparams)
        if not self.model:
            raise UserError(f"llama.cpp could not load {model_path}: is it a GGUF model file?")
        self.vocab = L.llama_model_get_vocab(self.model)
        cparams = L.llama_context_default_params()
        cparams.n_ctx = ctx * parallel
        cparams.n_seq_max = parallel
        cparams.n_batch = self.n_batch
        cparams.n_ubatch = min(max(n_ubatch, parallel), self.n_batch)
        cparams.kv_unified = False
        cparams.n_threads = cparams.n_threads_batch = self.threads
        self.ctx = L.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            L.llama_model_free(self.model)
            raise UserError(f"llama.cpp could not create a context of {ctx} x {parallel} tokens: lower --ctx or --parallel")
        self.memory = L.llama_get_memory(self.ctx)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.speculation = speculation or Speculation()
        try:
            self.drafter = self._drafter(self.speculation)
        except BaseException:
            L.llama_free(self.ctx)
            L.llama_model_free(self.model)
            raise
        self.metadata = self._read_metadata()
        self.batch = L.llama_batch_init(self.n_batch, 0, 1)
        self.slots = [_Slot(i) for i in range(parallel)]
        self.prompt_cache = PromptCache(L, self.ctx, prompt_cache_bytes)
        self.waiting: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = False
        self.failure: str | None = None
        self.stats = {"decode_calls": 0, "tokens_generated": 0, "prompt_tokens": 0, "prompt_tokens_reused": 0,
                      "cancelled": 0, "request_errors": 0, "prompt_cache_restores": 0,
                      "reasoning_loops_closed": 0, "draft_tokens": 0, "draft_tokens_accepted": 0}
        think_close = self.tokenize("</think>", special=True)
        self.think_close_token = think_close[0] if len(think_close) == 1 else None
        self.close_thinking_tokens = self.tokenize(CLOSE_THINKING, special=True)
        self.wait_tokens = self.tokenize("\nWait", special=False)
        # masked for min_tokens / ignore_eos; built here, not in the engine thread, where it would stall every slot
        self.eog_tokens = np.array([t for t in range(self.n_vocab) if self.is_eog(t)], dtype=np.int64)
        self.thread = threading.Thread(target=self._run, name="r1-distill-engine", daemon=True)
        self.thread.start()

    def _drafter(self, spec: Speculation):
        spec.check()
        if spec.lookup:
            return PromptLookup()
        if spec.draft_model:
            return DraftModel(self.L, spec.draft_model, self.vocab, parallel=self.parallel, ctx=self.ctx_per_slot,
                              threads=self.threads, p_min=spec.draft_p_min, n_batch=self.n_batch)
        return None

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
        data = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace").encode("utf-8")
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
    @property
    def healthy(self) -> bool:
        return self.failure is None and self.thread.is_alive()

    def queue_length(self) -> int:
        return self.waiting.qsize()

    def busy_slots(self) -> int:
        return sum(s.busy for s in self.slots)

    def submit(self, request: GenerationRequest, emit: Callable[[Event], None]) -> Callable[[], None]:
        """Queue a request; `emit` is called from the engine thread. Returns a cancel function."""
        return self.submit_many([request], [emit])[0]

    def submit_many(self, requests: list[GenerationRequest], emits: list[Callable[[Event], None]]):
        """Queue several requests at once (all or none: QueueFull if they do not all fit)."""
        if not self.healthy:
            raise EngineFailed(self.failure or "the engine thread is not running")
        for r in requests:
            if len(r.prompt_tokens) >= self.ctx_per_slot or not r.prompt_tokens:
                raise UserError(f"the prompt has {len(r.prompt_tokens)} tokens; the context is {self.ctx_per_slot}")
        with self.lock:
            if self.waiting.qsize() + len(requests) > self.max_queue:
                raise QueueFull()
            cancels = []
            for request, emit in zip(requests, emits):
                cancelled = threading.Event()
                self.waiting.put((request, emit, cancelled))
                cancels.append(self._canceller(cancelled))
        self.wake.set()
        return cancels

    def _canceller(self, cancelled: threading.Event) -> Callable[[], None]:
        def cancel() -> None:
            cancelled.set()  # the same event follows the request into its slot: no cancel is lost
            self.wake.set()

        return cancel

    def close(self) -> None:
        self.stopping = True
        self.wake.set()
        self.thread.join(timeout=10)
        L = self.L
        for slot in self.slots:
            if slot.samplers is not None:
                slot.samplers.close()
        if self.drafter is not None:
            self.drafter.close()
        L.llama_batch_free(self.batch)
        L.llama_free(self.ctx)
        L.llama_model_free(self.model)

    # -- the loop ---------------------------------------------------------------------------------
    def _send(self, emit, event: Event) -> None:
        try:
            emit(event)
        except Exception:  # a listener that went away must not stop the engine
            pass

    def _fail_request(self, emit, message: str, *, engine_stopped: bool = False) -> None:
        self.stats["request_errors"] += 1
        self._send(emit, Event("done", finish_reason="error", usage={"error": message, "engine_stopped": engine_stopped}))

    def _admit(self) -> None:
        while True:
            free = [s for s in self.slots if not s.busy]
            if not free:
                return
            try:
                request, emit, cancelled = self.waiting.get_nowait()
            except queue.Empty:
                return
            if cancelled.is_set():
                self.stats["cancelled"] += 1
                continue
            slot = self._pick_slot(free, request.prompt_tokens)
            try:
                self._restore_saved_prompt(slot, request.prompt_tokens)
            except Exception:  # a cache miss, never an error
                self._release(slot, clear_cache=True)
            try:
                slot.start(request, emit, cancelled, self)
            except Exception as exc:
                self._release(slot, clear_cache=True)
                self._fail_request(emit, f"could not start the request: {exc}")
                continue
            self.stats["prompt_tokens"] += len(request.prompt_tokens)
            self.stats["prompt_tokens_reused"] += slot.reused

    @staticmethod
    def _pick_slot(free: list[_Slot], prompt: list[int]) -> _Slot:
        """The free slot that costs least: the prompt's tokens left to prefill, plus a tenth of the cached
        tokens the slot would drop (a long prompt kept in its slot, not saved to RAM in this request's path
        while an empty or short slot is free); ties to the least recently used."""
        def cost(slot: _Slot) -> tuple[float, float]:
            shared = common_prefix(slot.cached, prompt)
            return (len(prompt) - shared) + 0.1 * (len(slot.cached) - shared), slot.last_used

        return min(free, key=cost)

    def _restore_saved_prompt(self, slot: _Slot, prompt: list[int]) -> None:
        """If a prompt saved in RAM shares more with `prompt` than `slot` does, load it into the slot."""
        have = common_prefix(slot.cached, prompt)
        key, shared = self.prompt_cache.best(prompt, common_prefix)
        if key is None or not self.prompt_cache.worth_restoring(key, shared - have):
            return
        self.prompt_cache.save_before_overwrite(slot.seq_id, slot.cached, have)
        tokens = self.prompt_cache.restore(key, slot.seq_id)
        slot.cached = tokens if tokens is not None else []
        if tokens is not None:
            self.stats["prompt_cache_restores"] += 1

    def _release(self, slot: _Slot, *, clear_cache: bool = False) -> None:
        if clear_cache:
            self.L.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
            slot.cached = []
        if slot.samplers is not None:
            slot.samplers.close()
            slot.samplers = None
        slot.request = slot.emit = None
        slot.last_used = time.perf_counter()

    def _abort(self, slot: _Slot, message: str) -> None:
        """End the slot's request with an error; its cache may be half written, so it is cleared."""
        emit = slot.emit
        self._release(slot, clear_cache=True)
        self._fail_request(emit, message)

    def _finish(self, slot: _Slot, reason: str) -> None:
        self._send_text(slot, slot.stream.finish())
        r = slot.request
        usage = {
            "prompt_tokens": len(r.prompt_tokens), "completion_tokens": slot.generated,
            "total_tokens": len(r.prompt_tokens) + slot.generated, "reasoning_tokens": slot.reasoning_tokens,
            "cached_tokens": slot.reused,
            "time_to_first_token_s": (slot.first_token_at or time.perf_counter()) - slot.started,
            "duration_s": time.perf_counter() - slot.started,
        }
        if slot.thinking_closed_by is not None:
            usage["thinking_closed"] = slot.thinking_closed_by
        if self.drafter is not None:
            usage["draft_tokens"], usage["draft_tokens_accepted"] = slot.drafted, slot.accepted
        emit = slot.emit
        self._release(slot)  # free before telling: a client that sees "done" finds its slot free
        self._send(emit, Event("done", finish_reason=reason, usage=usage))

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # the loop itself broke: fail fast, never hang a client
            self.failure = f"{type(exc).__name__}: {exc}"
            self._fail_everything(self.failure)
            if self.on_failure is not None:
                try:
                    self.on_failure(self.failure)
                except Exception:
                    pass

    def _fail_everything(self, message: str) -> None:
        for slot in self.slots:
            if slot.busy:
                emit = slot.emit
                try:
                    self._release(slot, clear_cache=True)
                except Exception:
                    slot.request = slot.emit = None
                self._fail_request(emit, f"the engine stopped: {message}", engine_stopped=True)
        while True:
            try:
                _, emit, _ = self.waiting.get_nowait()
            except queue.Empty:
                break
            self._fail_request(emit, f"the engine stopped: {message}", engine_stopped=True)

    def _loop(self) -> None:
        while not self.stopping:
            with self.lock:
                for slot in self.slots:
                    if slot.busy and slot.cancelled.is_set():
                        self.stats["cancelled"] += 1
                        self._release(slot)
                self._admit()
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
                        self._abort(slot, str(exc))

    def _step(self, active: list[_Slot]) -> None:
        L, batch = self.L, self.batch
        drafts = self._drafts(active) if self.drafter is not None else {}
        n = 0
        sample_at: dict[int, int] = {}
        fed: list[tuple[_Slot, list[int]]] = []
        checked: dict[int, list[int]] = {}  # the drafts each slot checks in this decode
        # decoding slots first (one token each, and their drafts), then prompt chunks in the room left,
        # oldest request first
        for slot in sorted(active, key=lambda s: (len(s.pending) > 1, s.admitted)):
            room = self.n_batch - n
            if room <= 0:
                break
            if not slot.pending:
                continue
            chunk = slot.pending[:room]
            draft = drafts.get(slot.seq_id, [])[: room - len(chunk)] if len(chunk) == len(slot.pending) else []
            for i, token in enumerate(chunk + draft):
                batch.token[n] = token
                batch.pos[n] = slot.n_past + i
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = slot.seq_id
                batch.logits[n] = i >= len(chunk)
                n += 1
            fed.append((slot, chunk))
            if len(chunk) == len(slot.pending):  # this slot's input is all in: sample from its last position
                batch.logits[n - 1 - len(draft)] = True
                sample_at[slot.seq_id] = n - 1 - len(draft)
                if draft:
                    checked[slot.seq_id] = draft
        if n == 0:
            return
        batch.n_tokens = n
        code = L.llama_decode(self.ctx, batch)
        if code != 0:
            for slot_id in checked:  # the drafts' cache entries may be written: drop them
                L.llama_memory_seq_rm(self.memory, slot_id, self.slots[slot_id].n_past + 1, -1)
            raise RuntimeError(f"llama_decode returned {code}")
        for slot, chunk in fed:
            slot.n_past += len(chunk)
            slot.cached.extend(chunk)
            del slot.pending[: len(chunk)]
        self.stats["decode_calls"] += 1
        for slot in active:
            if slot.busy and slot.seq_id in sample_at:
                try:
                    self._verify(slot, sample_at[slot.seq_id], checked.get(slot.seq_id, []))
                except Exception as exc:  # this request only
                    if slot.busy:
                        self._abort(slot, f"sampling failed: {exc}")

    def _drafts(self, active: list[_Slot]) -> dict[int, list[int]]:
        """Drafts for the slots that are decoding (their prompt is in), as many as their budget leaves."""
        spec = self.speculation
        cap = spec.draft_max if spec.draft_model else spec.lookup
        wanted = {}
        for slot in active:
            if not slot.busy or len(slot.pending) != 1 or slot.generated == 0:
                continue
            room = min(slot.request.max_tokens - slot.generated, self.ctx_per_slot - slot.n_past - 1) - 1
            if room >= 1:
                wanted[slot.seq_id] = (slot.cached + slot.pending, min(room, cap))
        return self.drafter.draft(wanted) if wanted else {}

    def _verify(self, slot: _Slot, index: int, draft: list[int]) -> None:
        """Sample at the slot's next position, then at each drafted one while the sample is the draft: every
        token sampled is output (the drafts kept are already in the KV cache); the rest's cache is dropped."""
        slot.drafted += len(draft)
        self.stats["draft_tokens"] += len(draft)
        before = slot.accepted
        self._sample(slot, index, expected=draft[0] if draft else None)
        for i, token in enumerate(draft):
            if not slot.busy or slot.pending != [token]:  # rejected, forced text, or the request ended
                break
            slot.pending.clear()
            slot.cached.append(token)
            slot.n_past += 1
            self._sample(slot, index + 1 + i, expected=draft[i + 1] if i + 1 < len(draft) else None)
        if draft:
            self.L.llama_memory_seq_rm(self.memory, slot.seq_id, len(slot.cached), -1)
            self.stats["draft_tokens_accepted"] += slot.accepted - before

    def _choose(self, slot: _Slot, logits: np.ndarray, grammar_on: bool) -> int | None:
        r, samplers = slot.request, slot.samplers
        if samplers is not None:
            logits = samplers.adjust(logits)
        if slot.generated < r.min_tokens:
            logits = logits.copy()
            logits[self.eog_tokens] = -np.inf
        token = sample_token(logits, r.temperature, r.top_p, r.top_k, slot.rng)
        if grammar_on and samplers is not None and samplers.grammar is not None and not samplers.grammar_allows(token):
            masked = samplers.grammar_mask(logits)
            if not np.isfinite(masked).any():
                return None  # the grammar allows nothing more
            token = sample_token(masked, r.temperature, r.top_p, r.top_k, slot.rng)
        return token

    def _sample(self, slot: _Slot, index: int, expected: int | None = None) -> None:
        r = slot.request
        logits = np.ctypeslib.as_array(self.L.llama_get_logits_ith(self.ctx, index), shape=(self.n_vocab,))
        in_thinking = slot.in_thinking()
        grammar_on = not in_thinking
        token = self._choose(slot, logits, grammar_on)
        if token is None:
            return self._finish(slot, "stop")
        if token == expected:  # a drafted token sampled (counted before the request can finish below)
            slot.accepted += 1
        if slot.first_token_at is None:
            slot.first_token_at = time.perf_counter()
        self.stats["tokens_generated"] += 1
        slot.generated += 1
        if in_thinking:
            slot.reasoning_tokens += 1
        if r.logprobs is not None:
            chosen, top = top_logprobs(log_softmax(logits), token, r.logprobs)
            self._send(slot.emit, Event("logprob", data={
                "token": token, "logprob": chosen, "top": top, "part": "reasoning" if in_thinking else "answer"}))
        if self.is_eog(token):
            return self._finish(slot, "stop")
        if slot.samplers is not None:
            slot.samplers.accept(token, grammar=grammar_on)
        if token == self.think_close_token and in_thinking and slot.waits_left > 0:
            slot.waits_left -= 1  # s1 budget forcing: keep thinking
            self._feed_forced(slot, self.wait_tokens, "\nWait")
        else:
            slot.pending.append(token)
            self._add_text(slot, self.token_bytes(token))
        if not slot.busy:
            return
        if in_thinking and not slot.budget_spent and not slot.stream.thinking_closed:
            self._close_thinking_if_due(slot, token)
        if slot.busy and slot.generated >= r.max_tokens:
            self._finish(slot, "length")
        elif slot.busy and slot.n_past + len(slot.pending) >= self.ctx_per_slot:
            self._finish(slot, "length")

    def _close_thinking_if_due(self, slot: _Slot, token: int) -> None:
        """The thinking budget spent, or the thinking looping: close it and let the model answer."""
        r = slot.request
        if r.thinking_budget is not None and slot.reasoning_tokens >= r.thinking_budget:
            slot.thinking_closed_by = "budget"
        elif slot.loop is not None and slot.loop.add(token):
            slot.thinking_closed_by = "loop"
            self.stats["reasoning_loops_closed"] += 1
        else:
            return
        slot.budget_spent = True
        slot.loop = None
        self._feed_forced(slot, self.close_thinking_tokens, CLOSE_THINKING)

    def _feed_forced(self, slot: _Slot, tokens: list[int], text: str) -> None:
        slot.pending.extend(tokens)
        self._add_text(slot, text)

    def _add_text(self, slot: _Slot, text: str | bytes) -> None:
        """A sampled token's bytes or forced text into the slot's stream; a stop string ends the request."""
        armed = slot.generated >= slot.request.min_tokens  # as vLLM: no stop of any kind before min_tokens
        add = slot.stream.add_bytes if isinstance(text, bytes) else slot.stream.add
        self._send_text(slot, add(text, stops_armed=armed))
        if slot.stream.stopped:
            self._finish(slot, "stop")

    def _send_text(self, slot: _Slot, pieces: list[tuple[str, str]]) -> None:
        for kind, text in pieces:
            self._send(slot.emit, Event(kind, text))
