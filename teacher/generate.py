"""`r1-distill generate`: sample k traces per prompt from a teacher, resumably.

Records are appended one line at a time to a fresh shard per run (``traces-NNNNN.jsonl``). Run the
same command again and only the (prompt, sample) pairs not yet on disk are requested. Every check
that can fail (prompt file, fields, endpoint, key, model) runs before the output folder is touched.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from r1_distill.errors import UserError
from r1_distill.files import repair_jsonl_tail
from r1_distill.manifest import write_manifest
from r1_distill.registry import load_registry
from r1_distill.traces import TRACE_SHARD_GLOB, TraceRecord, append_traces, iter_traces

from . import backends, resume
from .prompts import CODE_PROMPT_SUFFIX, load_prompts

BACKENDS = ("openai", "vllm", "transformers", "llamacpp")


@dataclass
class GenerateConfig:
    teacher: str  # models.yaml teacher name, endpoint URL, hub id / HF folder, or .gguf file
    prompts: str  # JSONL, Parquet or hub dataset id
    out: str
    samples: Optional[int] = None  # default: models.yaml (4)
    backend: Optional[str] = None  # default: from the teacher
    model: Optional[str] = None  # served model name (openai)
    endpoints: list[str] = field(default_factory=list)  # more endpoints for scale-out (openai)
    api_key_env: Optional[str] = None
    concurrency: int = 64
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    seed: Optional[int] = None
    problem_field: str = "problem"
    answer_field: str = "answer"
    id_field: str = "id"
    split: str = "train"
    limit: Optional[int] = None
    batch_size: int = 8  # transformers
    ctx: int = 4096  # llamacpp context per sequence
    tensor_parallel_size: int = 1  # vllm
    data_parallel_size: int = 1  # engine processes, each on its own GPU group, prompts sharded over them
    shard: Optional[tuple[int, int]] = None  # (rank, size): set in the engine processes
    max_model_len: Optional[int] = None  # vllm
    models_file: Optional[str] = None
    show_progress: bool = True


@dataclass
class ResolvedTeacher:
    name: str
    backend: str
    model: str
    endpoints: list[str]
    api_key: str
    tensor_parallel_size: int
    max_model_len: Optional[int]
    data_parallel_size: int = 1


def resolve_teacher(config: GenerateConfig, registry) -> ResolvedTeacher:
    spec = config.teacher
    if spec in registry.teachers:
        t = registry.teacher(spec)
        backend = config.backend or t.kind
        endpoints = [t.base_url] if t.base_url else []
        key_env = config.api_key_env or t.api_key_env
        model = config.model or t.model
        tp, max_len = max(config.tensor_parallel_size, t.tensor_parallel_size), config.max_model_len or t.max_model_len
        dp = max(config.data_parallel_size, t.data_parallel_size)
    else:
        is_url = re.match(r"https?://", spec) is not None
        backend = config.backend or ("openai" if is_url else "llamacpp" if spec.endswith(".gguf") else "transformers")
        endpoints = [spec] if is_url else []
        key_env = config.api_key_env
        model = config.model or (spec if not is_url else None)
        tp, max_len = config.tensor_parallel_size, config.max_model_len
        dp = config.data_parallel_size
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}: choose from {', '.join(BACKENDS)}")
    endpoints += config.endpoints
    api_key = "none"
    if key_env:
        api_key = os.environ.get(key_env, "")
        if not api_key:
            raise UserError(f"the teacher's API key variable ${key_env} is not set: export {key_env}=...")
    if backend == "openai":
        if not endpoints:
            raise UserError(f"teacher {spec!r} has no endpoint: pass a URL (http://host:port/v1) or a registry name")
        if not model:
            model = _served_model(endpoints[0], api_key)
    elif backend == "llamacpp" and not Path(spec).is_file():
        raise UserError(f"GGUF file {spec} does not exist")
    elif backend in ("transformers", "vllm") and not model:
        raise UserError(f"teacher {spec!r} names no model")
    return ResolvedTeacher(name=spec, backend=backend, model=model, endpoints=endpoints, api_key=api_key,
                           tensor_parallel_size=tp, max_model_len=max_len, data_parallel_size=dp)


def _served_model(endpoint: str, api_key: str) -> str:
    import httpx

    try:
        r = httpx.get(endpoint.rstrip("/") + "/models", headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
        if r.status_code == 200 and r.json().get("data"):
            return r.json()["data"][0]["id"]
    except (httpx.HTTPError, ValueError):
        pass
    return "default"


def done_keys(out: Path) -> set[tuple[str, int]]:
    keys = set()
    if not out.is_dir():
        return keys
    for shard in sorted(out.glob(TRACE_SHARD_GLOB)):
        repair_jsonl_tail(shard)
    if any(out.glob(TRACE_SHARD_GLOB)):
        keys = {r.key for r in iter_traces(out)}
    return keys


def next_shard(out: Path, rank: Optional[int] = None) -> Path:
    numbers = [int(m.group(1)) for p in out.glob(TRACE_SHARD_GLOB) if (m := re.match(r"traces-(\d+)", p.name))]
    number = max(numbers) + 1 if numbers else 0
    return out / (f"traces-{number:05d}.jsonl" if rank is None else f"traces-{number:05d}-dp{rank}.jsonl")


def _engine_process(config: GenerateConfig, rank: int, devices: Optional[str], results) -> None:
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices  # before the engine imports CUDA
    from dataclasses import replace

    try:
        results.put((rank, generate(replace(config, shard=(rank, config.data_parallel_size), data_parallel_size=1,
                                            show_progress=False)), None))
    except Exception as exc:  # reported by the parent, which exits 2 for a UserError
        results.put((rank, None, (type(exc).__name__, str(exc))))


def _data_parallel(config: GenerateConfig, tp: int) -> dict:
    """One engine process per GPU group (tp GPUs each), prompts sharded over them."""
    import multiprocessing

    import torch

    n = config.data_parallel_size
    gpus = list(range(torch.cuda.device_count()))
    if gpus and len(gpus) < n * tp:
        raise UserError(f"--data-parallel-size {n} x --tensor-parallel-size {tp} needs {n * tp} GPUs; {len(gpus)} are visible")
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = []
    for rank in range(n):
        devices = ",".join(str(g) for g in gpus[rank * tp:(rank + 1) * tp]) if gpus else None
        proc = ctx.Process(target=_engine_process, args=(config, rank, devices, results))
        proc.start()
        procs.append(proc)
    outcomes = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    failures = [f"engine {rank}: {err[1]}" for rank, _, err in outcomes if err]
    if failures:
        raise UserError("; ".join(failures))
    summaries = [s for _, s, _ in outcomes]
    total = {k: sum(s[k] for s in summaries) for k in ("generated", "completion_tokens")}
    return {**summaries[0], **total, "data_parallel_size": n, "already_done": sum(s["already_done"] for s in summaries),
            "total": sum(s["total"] for s in summaries)}


def generate(config: GenerateConfig) -> dict:
    registry = load_registry(config.models_file)
    defaults = registry.defaults.sampling
    samples = config.samples or defaults.samples
    if samples < 1 or config.concurrency < 1:
        raise UserError("--samples and --concurrency must be at least 1")
    prompts = load_prompts(config.prompts, problem_field=config.problem_field, answer_field=config.answer_field,
                           id_field=config.id_field, split=config.split, limit=config.limit)
    teacher = resolve_teacher(config, registry)
    kinds = {p.kind for p in prompts}
    if len(kinds) > 1:
        raise UserError(f"{config.prompts} mixes math and code problems (records with a 'tests' field are code): "
                        "sample them in two runs, into two --out folders, since they take different instructions")
    sampling = backends.Sampling(
        temperature=defaults.temperature if config.temperature is None else config.temperature,
        top_p=defaults.top_p if config.top_p is None else config.top_p,
        max_tokens=config.max_tokens or defaults.max_new_tokens,
        prompt_suffix=CODE_PROMPT_SUFFIX if kinds == {"code"} else defaults.prompt_suffix,
        system_prompt=defaults.system_prompt, seed=config.seed)
    if teacher.backend == "openai":
        backends.preflight_openai(teacher.endpoints, teacher.api_key, teacher.model)

    out = Path(config.out)
    if config.shard is None:  # engine processes of a data-parallel run share their parent's claim
        resume.claim(out, resume.identity_of(teacher.name, teacher.model, teacher.backend, sampling))
    if teacher.data_parallel_size > 1 and config.shard is None:
        from dataclasses import replace

        config = replace(config, data_parallel_size=teacher.data_parallel_size)
        if teacher.backend not in ("vllm", "transformers"):
            raise UserError("--data-parallel-size is for local engines (vllm, transformers); an endpoint scales with --endpoints")
        out.mkdir(parents=True, exist_ok=True)
        summary = _data_parallel(config, teacher.tensor_parallel_size)
        write_manifest(out, "generate", config=config, inputs={"prompts": config.prompts, "teacher": teacher.name},
                       outputs={"shards": sorted(p.name for p in out.glob(TRACE_SHARD_GLOB))}, metrics=summary)
        return summary
    if config.shard is not None:
        rank, size = config.shard
        prompts = prompts[rank::size]
    finished = done_keys(out)
    jobs = [(p, k) for p in prompts for k in range(samples) if (p.id, k) not in finished]
    total = len(prompts) * samples
    summary = {"prompts": len(prompts), "samples": samples, "total": total, "already_done": total - len(jobs),
               "generated": 0, "completion_tokens": 0}
    if not jobs:
        return summary
    out.mkdir(parents=True, exist_ok=True)
    shard = next_shard(out, config.shard[0] if config.shard else None)
    lock = threading.Lock()
    started = time.perf_counter()

    def write(record: TraceRecord) -> None:
        with lock:
            append_traces(shard, [record])

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn()]
    with Progress(*columns, disable=not config.show_progress, transient=False) as bar:
        task = bar.add_task(f"generate ({teacher.backend})", total=total, completed=total - len(jobs), rate="")

        def progress(record: TraceRecord) -> None:
            summary["generated"] += 1
            summary["completion_tokens"] += record.completion_tokens or 0
            elapsed = max(time.perf_counter() - started, 1e-6)
            bar.update(task, advance=1, rate=f"{summary['generated'] / elapsed:.2f} traces/s, "
                                             f"{summary['completion_tokens'] / elapsed:.0f} tok/s")

        common = dict(teacher=teacher.name, sampling=sampling, progress=progress)
        if teacher.backend == "openai":
            backends.run_openai(jobs, write, endpoints=teacher.endpoints, api_key=teacher.api_key, model=teacher.model,
                                concurrency=config.concurrency, **common)
        elif teacher.backend == "llamacpp":
            backends.run_llamacpp(jobs, write, model_path=config.teacher, concurrency=config.concurrency,
                                  ctx=config.ctx, **common)
        elif teacher.backend == "transformers":
            backends.run_transformers(jobs, write, model_id=teacher.model, batch_size=config.batch_size, **common)
        else:
            backends.run_vllm(jobs, write, model_id=teacher.model, tensor_parallel_size=teacher.tensor_parallel_size,
                              max_model_len=teacher.max_model_len, chunk_prompts=max(1, config.concurrency), **common)
    elapsed = time.perf_counter() - started
    summary.update(seconds=round(elapsed, 3), traces_per_s=round(summary["generated"] / elapsed, 3),
                   tokens_per_s=round(summary["completion_tokens"] / elapsed, 1))
    write_manifest(out, "generate", config=config, inputs={"prompts": config.prompts, "teacher": teacher.name},
                   outputs={"shards": sorted(p.name for p in out.glob(TRACE_SHARD_GLOB))}, metrics=summary)
    return summary
