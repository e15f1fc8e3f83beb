"""Teacher backends. Each turns (prompt, sample index) jobs into trace records and hands every record
to `write` as soon as it is complete, so a kill loses at most the requests in flight.

* openai: any OpenAI-compatible endpoint (DeepSeek API, vLLM, llama-server, our serve/), async with
  bounded concurrency, the client's retries with backoff on 429/5xx/time-outs, several endpoints
  round-robin; reads `reasoning_content`, `reasoning` or raw `<think>` text alike.
* vllm: the offline engine (`LLM.chat`, n samples per prompt, tensor parallel, thousands of
  sequences per call: see VLLM_CHUNK_SEQUENCES).
* transformers: batched `generate`, CPU or GPU.
* llamacpp: a GGUF through llama.cpp, samples decoded together by serve/'s batching engine.
"""

from __future__ import annotations

import asyncio
import queue
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from r1_distill.errors import UserError, require
from r1_distill.traces import TraceRecord

from r1_distill.prompts import Prompt

Job = tuple[Prompt, int]  # (prompt, sample index)
Write = Callable[[TraceRecord], None]


@dataclass
class Sampling:
    temperature: float
    top_p: float
    max_tokens: int
    prompt_suffix: str
    system_prompt: Optional[str] = None
    seed: Optional[int] = None

    def as_dict(self) -> dict:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens,
                "prompt_suffix": self.prompt_suffix, "seed": self.seed}

    def messages(self, prompt: Prompt) -> list[dict]:
        content = f"{prompt.problem}\n{self.prompt_suffix}" if self.prompt_suffix else prompt.problem
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return msgs + [{"role": "user", "content": content}]

    def job_seed(self, job: Job) -> Optional[int]:
        if self.seed is None:
            return None
        # crc32, not hash(): str hashes change from one process to the next, and seeds must not
        return (self.seed * 1_000_003 + zlib.crc32(job[0].id.encode()) % 1_000_003 + job[1]) % (2**31)


def _record(job: Job, *, teacher: str, backend: str, sampling: Sampling, completion: str,
            reasoning: Optional[str] = None, **fields) -> TraceRecord:
    prompt, k = job
    return TraceRecord.from_completion(
        problem_id=prompt.id, problem=prompt.problem, reference_answer=prompt.answer, sample_index=k,
        teacher=teacher, backend=backend, sampling=sampling.as_dict(), prompt=sampling.messages(prompt)[-1]["content"],
        completion=completion, reasoning=reasoning, **fields)


# -- openai ---------------------------------------------------------------------------------------
def preflight_openai(endpoints: list[str], api_key: str, model: str, timeout: float = 10.0) -> None:
    """Reach every endpoint and check the key and the model before anything is written."""
    import httpx

    for base in endpoints:
        url = base.rstrip("/") + "/models"
        try:
            r = httpx.get(url, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout)
        except httpx.HTTPError as exc:
            raise UserError(f"cannot reach the teacher endpoint {base} ({type(exc).__name__}): is the server up?") from None
        if r.status_code in (401, 403):
            raise UserError(f"the teacher endpoint {base} refused the API key ({r.status_code}): "
                            "set the key's environment variable (--api-key-env)")
        if r.status_code == 404:
            continue  # no model listing on this server: the first request will tell
        if r.status_code >= 400:
            raise UserError(f"the teacher endpoint {base} answered {r.status_code} to GET /models")
        try:
            ids = [m["id"] for m in r.json().get("data", [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UserError(f"{base} is not an OpenAI-compatible endpoint (GET /models did not return a model list)") from None
        if ids and model not in ids:
            raise UserError(f"unknown model {model!r} at {base}: it serves {', '.join(ids[:10])}; pass --model NAME")


def run_openai(jobs: list[Job], write: Write, *, endpoints: list[str], api_key: str, model: str, teacher: str,
               sampling: Sampling, concurrency: int, max_retries: int = 6, timeout: float = 3600,
               progress: Callable[[TraceRecord], None]) -> None:
    from openai import APIStatusError, AsyncOpenAI

    async def main() -> None:
        clients = [AsyncOpenAI(base_url=e, api_key=api_key, max_retries=max_retries, timeout=timeout) for e in endpoints]
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int, job: Job) -> None:
            async with gate:
                client = clients[i % len(clients)]
                start = time.perf_counter()
                extra = {"seed": sampling.job_seed(job)} if sampling.seed is not None else {}
                try:
                    resp = await client.chat.completions.create(
                        model=model, messages=sampling.messages(job[0]), temperature=sampling.temperature,
                        top_p=sampling.top_p, max_tokens=sampling.max_tokens, **extra)
                except APIStatusError as exc:
                    if exc.status_code in (400, 401, 403, 404):
                        raise UserError(f"the teacher endpoint refused the request ({exc.status_code}): {exc.message}") from None
                    raise
                choice = resp.choices[0]
                extra_fields = choice.message.model_extra or {}
                reasoning = extra_fields.get("reasoning_content") or extra_fields.get("reasoning")
                usage = resp.usage
                details = getattr(usage, "completion_tokens_details", None) if usage else None
                record = _record(job, teacher=teacher, backend="openai", sampling=sampling,
                                 completion=choice.message.content or "", reasoning=reasoning,
                                 finish_reason=choice.finish_reason,
                                 prompt_tokens=usage.prompt_tokens if usage else None,
                                 completion_tokens=usage.completion_tokens if usage else None,
                                 reasoning_tokens=getattr(details, "reasoning_tokens", None) if details else None,
                                 latency_s=round(time.perf_counter() - start, 4),
                                 meta={"endpoint": str(client.base_url), "response_id": resp.id})
                write(record)
                progress(record)

        tasks = [asyncio.create_task(one(i, job)) for i, job in enumerate(jobs)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            for c in clients:
                await c.close()

    asyncio.run(main())


# -- llama.cpp ------------------------------------------------------------------------------------
def run_llamacpp(jobs: list[Job], write: Write, *, model_path: str, teacher: str, sampling: Sampling,
                 concurrency: int, ctx: int, progress: Callable[[TraceRecord], None]) -> None:
    from r1_distill.llama.chat_template import ChatFormatter
    from r1_distill.llama.engine import BatchEngine, GenerationRequest

    parallel = max(1, min(concurrency, 8, len(jobs)))
    engine = BatchEngine(model_path, parallel=parallel, ctx=ctx, max_queue=len(jobs) + 1)
    try:
        formatter = ChatFormatter(engine)
        done: queue.Queue = queue.Queue()
        for job in jobs:
            prompt = formatter.render(sampling.messages(job[0]))
            tokens = engine.tokenize(prompt, special=True)
            request = GenerationRequest(prompt_tokens=tokens, max_tokens=min(sampling.max_tokens, ctx - len(tokens) - 1),
                                        temperature=sampling.temperature, top_p=sampling.top_p,
                                        seed=sampling.job_seed(job), thinking=prompt.rstrip().endswith("<think>"))
            text: list[str] = []
            start = time.perf_counter()

            def emit(ev, job=job, text=text, start=start):
                if ev.kind == "raw":
                    text.append(ev.text)
                elif ev.kind == "done":
                    done.put((job, "".join(text), ev, time.perf_counter() - start))

            engine.submit(request, emit)
        for _ in jobs:
            job, completion, ev, latency = done.get()
            if ev.finish_reason == "error":
                raise UserError(f"llama.cpp generation failed: {ev.usage.get('error')}")
            record = _record(job, teacher=teacher, backend="llamacpp", sampling=sampling, completion=completion,
                             finish_reason=ev.finish_reason, prompt_tokens=ev.usage["prompt_tokens"],
                             completion_tokens=ev.usage["completion_tokens"], reasoning_tokens=ev.usage["reasoning_tokens"],
                             latency_s=round(latency, 4))
            write(record)
            progress(record)
    finally:
        engine.close()


# -- transformers ---------------------------------------------------------------------------------
def run_transformers(jobs: list[Job], write: Write, *, model_id: str, teacher: str, sampling: Sampling,
                     batch_size: int, progress: Callable[[TraceRecord], None]) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(model_id)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_id, dtype=dtype).to(device).eval()
    eos = tokenizer.eos_token_id
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start: start + batch_size]
        texts = [tokenizer.apply_chat_template(sampling.messages(p), tokenize=False, add_generation_prompt=True)
                 for p, _ in batch]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        if sampling.seed is not None:
            torch.manual_seed(sampling.job_seed(batch[0]))
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(**enc, do_sample=sampling.temperature > 0, temperature=sampling.temperature or None,
                                 top_p=sampling.top_p if sampling.temperature > 0 else None,
                                 max_new_tokens=sampling.max_tokens, pad_token_id=tokenizer.pad_token_id, eos_token_id=eos)
        latency = time.perf_counter() - t0
        width = enc["input_ids"].shape[1]
        for row, job in enumerate(batch):
            generated = out[row, width:].tolist()
            finish = "length"
            if eos in generated:
                generated = generated[: generated.index(eos)]
                finish = "stop"
            completion = tokenizer.decode(generated, skip_special_tokens=False)
            record = _record(job, teacher=teacher, backend="transformers", sampling=sampling, completion=completion,
                             finish_reason=finish, prompt_tokens=int(enc["attention_mask"][row].sum()),
                             completion_tokens=len(generated) + (finish == "stop"), latency_s=round(latency, 4))
            write(record)
            progress(record)


# -- vLLM -----------------------------------------------------------------------------------------
# vLLM schedules continuously inside one `llm.chat` call, but the call returns only when its slowest
# sample is done: with long reasoning traces the end of every call decodes a few stragglers on an
# otherwise idle GPU. The more sequences a call holds, the smaller that tail's share of the call. But
# records are written only when a call returns, so a crash (OOM kill, preemption) loses the call in
# flight; a rerun samples those again. 4096 sequences (1024 prompts at the default 4 samples) is many
# times what an engine decodes at once, so the tail costs a few percent, while a crash loses at most one
# call: at R1 lengths some 30M tokens, tens of minutes to a few hours of one engine depending on the
# teacher. Where that is too much to risk, put the teacher behind `vllm serve` and use the openai
# backend, which writes every sample the moment it completes.
VLLM_CHUNK_SEQUENCES = 4096


def chunk_groups(groups: list[list[Job]], max_sequences: int) -> Iterator[list[list[Job]]]:
    """Consecutive runs of prompt groups with at most max_sequences samples in all. A prompt's samples
    stay in one request (they share its seed), so a group larger than the budget is a chunk of its own."""
    chunk: list[list[Job]] = []
    size = 0
    for group in groups:
        if chunk and size + len(group) > max_sequences:
            yield chunk
            chunk, size = [], 0
        chunk.append(group)
        size += len(group)
    if chunk:
        yield chunk


def run_vllm(jobs: list[Job], write: Write, *, model_id: str, teacher: str, sampling: Sampling,
             tensor_parallel_size: int, max_model_len: Optional[int], progress: Callable[[TraceRecord], None],
             chunk_sequences: int = VLLM_CHUNK_SEQUENCES) -> None:
    vllm = require("vllm", "vllm", "the vllm backend")
    llm = vllm.LLM(model=model_id, tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
                   seed=sampling.seed or 0)
    by_prompt: dict[str, list[Job]] = {}
    for job in jobs:
        by_prompt.setdefault(job[0].id, []).append(job)
    for chunk in chunk_groups(list(by_prompt.values()), chunk_sequences):
        params = [vllm.SamplingParams(n=len(g), temperature=sampling.temperature, top_p=sampling.top_p,
                                      max_tokens=sampling.max_tokens, seed=sampling.job_seed(g[0])) for g in chunk]
        t0 = time.perf_counter()
        outputs = llm.chat([sampling.messages(g[0][0]) for g in chunk], params, use_tqdm=False)
        latency = time.perf_counter() - t0
        for group, output in zip(chunk, outputs):
            for job, sample in zip(group, output.outputs):
                record = _record(job, teacher=teacher, backend="vllm", sampling=sampling, completion=sample.text,
                                 finish_reason=sample.finish_reason, prompt_tokens=len(output.prompt_token_ids or []),
                                 completion_tokens=len(sample.token_ids), latency_s=round(latency, 4))
                write(record)
                progress(record)
