"""`r1-distill generate`: sample k traces per prompt from a teacher, resumably.

Records are appended one line at a time to a fresh shard per run (``traces-NNNNN.jsonl``). Run the
same command again and only the (prompt, sample) pairs not yet on disk are requested. Every check
that can fail (prompt file, fields, endpoint, key, model) runs before the output folder is touched.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from r1_distill.errors import UserError
from r1_distill.files import repair_jsonl_tail
from r1_distill.manifest import write_manifest
from r1_distill.options import internal, option
from r1_distill.registry import load_registry
from r1_distill.traces import TRACE_SHARD_GLOB, TraceRecord, append_traces, iter_traces

from . import backends, resume
from r1_distill.prompts import CODE_PROMPT_SUFFIX, load_prompts

BACKENDS = ("openai", "vllm", "transformers", "llamacpp")


@dataclass
class GenerateConfig:
    teacher: str = option(help="models.yaml teacher, endpoint URL, hub id / HF folder, or .gguf.")
    prompts: str = option(help="JSONL, Parquet or a datasets hub id.")
    out: str = option(help="Folder for traces-*.jsonl shards (resumable).")
    samples: Optional[int] = option(None, help="Samples per prompt (default: models.yaml).")
    backend: Optional[str] = option(None, help="openai | vllm | transformers | llamacpp (default: from the teacher).")
    model: Optional[str] = option(None, help="Served model name (openai backend).")
    endpoints: list[str] = option(default_factory=list, csv=True,
                                  help="More comma-separated endpoint URLs (scale-out).")
    api_key_env: Optional[str] = option(None, help="Environment variable with the API key.")
    concurrency: int = option(64, help="Requests in flight (openai) / sequences (llamacpp).")
    max_tokens: Optional[int] = option(None, help="New tokens per sample (default: models.yaml).")
    temperature: Optional[float] = option(None, help="Default: models.yaml (R1: 0.6).")
    top_p: Optional[float] = option(None, help="Default: models.yaml (R1: 0.95).")
    seed: Optional[int] = option(None, help="Sampling seed.")
    problem_field: str = option("problem", help="The prompts' problem column.")
    answer_field: str = option("answer", help="The prompts' reference answer column (kept with the traces).")
    id_field: str = option("id", help="The prompts' id column.")
    split: str = option("train", help="Split of a hub dataset.")
    limit: Optional[int] = option(None, help="Only the first N prompts.")
    batch_size: int = option(8, help="Sequences per generate call (transformers).")
    ctx: int = option(4096, help="Context per sequence (llamacpp).")
    tensor_parallel_size: Optional[int] = option(
        None, help="GPUs per vLLM engine (default: the teacher's models.yaml entry, else 1).")
    data_parallel_size: Optional[int] = option(
        None, help="Engine processes (vllm, transformers), prompts sharded (default: the teacher's models.yaml entry, else 1).")
    shard: Optional[tuple[int, int]] = internal(None)  # (rank, size): set in the engine processes
    max_model_len: Optional[int] = option(None, help="vLLM's context (default: the teacher's models.yaml entry).")
    models_file: Optional[str] = internal(None)
    show_progress: bool = internal(True)


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
        tp = _given_or(config.tensor_parallel_size, t.tensor_parallel_size)
        dp = _given_or(config.data_parallel_size, t.data_parallel_size)
        max_len = config.max_model_len or t.max_model_len
    else:
        is_url = re.match(r"https?://", spec) is not None
        backend = config.backend or ("openai" if is_url else "llamacpp" if spec.endswith(".gguf") else "transformers")
        endpoints = [spec] if is_url else []
        key_env = config.api_key_env
        model = config.model or (spec if not is_url else None)
        tp, dp = _given_or(config.tensor_parallel_size, 1), _given_or(config.data_parallel_size, 1)
        max_len = config.max_model_len
    if tp < 1 or dp < 1:
        raise UserError("--tensor-parallel-size and --data-parallel-size must be at least 1")
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


def _given_or(value: Optional[int], default: int) -> int:
    return default if value is None else value


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


# Engine processes that start together race for rendezvous ports: vLLM probes a free port, releases it
# and binds it again later, and a TP>1 engine needs several (vllm #43206). Each engine gets its own
# VLLM_PORT, from which vLLM probes upward, and the engines start a few seconds apart.
ENGINE_PORT_BASE = 20000  # engine 0's VLLM_PORT when the parent sets none
ENGINE_PORT_STRIDE = 100  # room for each engine to probe upward from its own base
ENGINE_START_STAGGER_S = 5.0
ENGINE_POLL_S = 2.0  # how soon an engine that died without reporting is noticed
ENGINE_EXIT_GRACE_S = 120.0  # after reporting, time to shut down before it is terminated


@dataclass(frozen=True)
class EnginePlacement:
    """Where one data-parallel engine process runs."""

    rank: int
    devices: Optional[str] = None  # its CUDA_VISIBLE_DEVICES; None: the parent's, unchanged (no GPUs)
    vllm_port: Optional[int] = None  # its VLLM_PORT; None for engines other than vLLM

    def env(self) -> dict[str, str]:
        env = {"CUDA_VISIBLE_DEVICES": self.devices} if self.devices is not None else {}
        return env | ({"VLLM_PORT": str(self.vllm_port)} if self.vllm_port is not None else {})

    def name(self) -> str:
        return f"engine {self.rank}" + (f" (GPUs {self.devices})" if self.devices is not None else "")


def visible_gpus(cuda_visible_devices: Optional[str], device_count: int) -> list[str]:
    """The parent's GPUs as CUDA_VISIBLE_DEVICES entries. A child reads indices in that variable as
    physical GPUs, so the parent's own list (indices, GPU-/MIG- UUIDs) is split, never renumbered."""
    if device_count <= 0:
        return []
    if cuda_visible_devices is None:
        return [str(index) for index in range(device_count)]
    entries = [entry.strip() for entry in cuda_visible_devices.split(",") if entry.strip()]
    return entries[:device_count]  # CUDA ignores the entries from the first invalid one on


def vllm_port_base(environ) -> int:
    value = environ.get("VLLM_PORT", "")
    return int(value) if value.isdigit() else ENGINE_PORT_BASE


def place_engines(gpus: list[str], *, tensor_parallel_size: int, data_parallel_size: int,
                  vllm_port_base: Optional[int]) -> list[EnginePlacement]:
    """Engine r gets the r-th run of tensor_parallel_size GPUs and VLLM_PORT base + stride * r."""
    tp, dp = tensor_parallel_size, data_parallel_size
    if gpus and len(gpus) < dp * tp:
        raise UserError(f"--data-parallel-size {dp} x --tensor-parallel-size {tp} needs {dp * tp} GPUs; "
                        f"{len(gpus)} are visible ({','.join(gpus)})")
    if vllm_port_base is not None and vllm_port_base + ENGINE_PORT_STRIDE * dp > 65535:
        raise UserError(f"VLLM_PORT={vllm_port_base} leaves no room for {dp} engines' ports: set a lower VLLM_PORT")
    return [EnginePlacement(rank=rank, devices=",".join(gpus[rank * tp:(rank + 1) * tp]) if gpus else None,
                            vllm_port=None if vllm_port_base is None else vllm_port_base + ENGINE_PORT_STRIDE * rank)
            for rank in range(dp)]


def _engine_process(config: GenerateConfig, placement: EnginePlacement, results) -> None:
    os.environ.update(placement.env())  # before the engine imports CUDA or picks a port
    rank = placement.rank
    try:
        results.put((rank, generate(replace(config, shard=(rank, config.data_parallel_size), data_parallel_size=1,
                                            show_progress=False)), None))
    except Exception as exc:  # reported by the parent, which exits 2 for a UserError
        results.put((rank, None, (type(exc).__name__, str(exc))))


def start_engines(ctx, target, args: tuple, placements: list[EnginePlacement], results, stagger_s: float) -> list:
    """One process per placement, running target(*args, placement, results), started stagger_s apart."""
    procs = []
    for placement in placements:
        if procs and stagger_s > 0:
            time.sleep(stagger_s)
        proc = ctx.Process(target=target, args=(*args, placement, results))
        proc.start()
        procs.append(proc)
    return procs


def _death(placement: EnginePlacement, exitcode: int) -> str:
    how = f"exit code {exitcode}"
    if exitcode < 0:
        try:
            how += f", {signal.Signals(-exitcode).name}"
        except ValueError:
            pass
        if -exitcode == signal.SIGKILL:
            how += ": the out-of-memory killer?"
    return f"{placement.name()} died ({how}) before reporting"


def wait_for_engines(procs: list, placements: list[EnginePlacement], results, poll_s: float = ENGINE_POLL_S,
                     exit_grace_s: float = ENGINE_EXIT_GRACE_S) -> list[dict]:
    """Every engine's summary, in rank order. An engine that dies without reporting (OOM kill, NCCL
    abort) is noticed within poll_s; the others finish their shards first, then one UserError names
    every failed engine."""
    reports: dict[int, tuple] = {}
    lost: dict[int, int] = {}  # rank -> exit code
    while len(reports) + len(lost) < len(procs):
        # exited before the read below: a report it sent is already in the queue's pipe
        exited = [r for r, proc in enumerate(procs) if r not in reports and r not in lost and proc.exitcode is not None]
        try:
            rank, summary, error = results.get(timeout=poll_s)
        except queue.Empty:
            for rank in exited:
                lost[rank] = procs[rank].exitcode
                if len(reports) + len(lost) < len(procs):
                    print(f"{_death(placements[rank], lost[rank])}; the other engines finish their shards first",
                          file=sys.stderr, flush=True)
            continue
        reports[rank] = (summary, error)
    _reap(procs, exit_grace_s)
    failures = [_death(placements[rank], code) for rank, code in sorted(lost.items())]
    failures += [f"{placements[rank].name()}: {error[1]}" for rank, (_, error) in sorted(reports.items()) if error]
    if failures:
        hint = ": rerun the same command to sample what is missing" if lost else ""
        raise UserError("; ".join(failures) + hint)
    return [reports[rank][0] for rank in range(len(procs))]


def _reap(procs: list, grace_s: float) -> None:
    """Join every engine; one that has reported but hangs in shutdown is terminated after grace_s."""
    deadline = time.monotonic() + grace_s
    for proc in procs:
        proc.join(timeout=max(0.0, deadline - time.monotonic()))
        if proc.exitcode is None:
            proc.terminate()
            proc.join()


def _data_parallel(config: GenerateConfig, teacher: ResolvedTeacher) -> dict:
    """One engine process per GPU group (tp GPUs each), prompts sharded over them."""
    import multiprocessing

    import torch

    n = config.data_parallel_size
    is_vllm = teacher.backend == "vllm"
    placements = place_engines(visible_gpus(os.environ.get("CUDA_VISIBLE_DEVICES"), torch.cuda.device_count()),
                               tensor_parallel_size=teacher.tensor_parallel_size, data_parallel_size=n,
                               vllm_port_base=vllm_port_base(os.environ) if is_vllm else None)
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = start_engines(ctx, _engine_process, (config,), placements, results,
                          stagger_s=ENGINE_START_STAGGER_S if is_vllm else 0.0)
    summaries = wait_for_engines(procs, placements, results)
    total = {k: sum(s[k] for s in summaries) for k in ("generated", "completion_tokens")}
    return {**summaries[0], **total, "data_parallel_size": n, "already_done": sum(s["already_done"] for s in summaries),
            "total": sum(s["total"] for s in summaries)}


def generate(config: GenerateConfig) -> dict:
    registry = load_registry(config.models_file)
    samples = config.samples or registry.defaults.sampling.samples
    if samples < 1 or config.concurrency < 1:
        raise UserError("--samples and --concurrency must be at least 1")
    prompts = load_prompts(config.prompts, problem_field=config.problem_field, answer_field=config.answer_field,
                           id_field=config.id_field, split=config.split, limit=config.limit)
    teacher = resolve_teacher(config, registry)
    sampling = _sampling(config, registry.defaults.sampling, {p.kind for p in prompts})
    if teacher.backend == "openai":
        backends.preflight_openai(teacher.endpoints, teacher.api_key, teacher.model)
    out = Path(config.out)
    if config.shard is None:  # engine processes of a data-parallel run share their parent's claim
        resume.claim(out, resume.identity_of(teacher.name, teacher.model, teacher.backend, sampling))
    if teacher.data_parallel_size > 1 and config.shard is None:
        config = replace(config, data_parallel_size=teacher.data_parallel_size,
                         tensor_parallel_size=teacher.tensor_parallel_size)
        if teacher.backend not in ("vllm", "transformers"):
            raise UserError("--data-parallel-size is for local engines (vllm, transformers); an endpoint scales with --endpoints")
        out.mkdir(parents=True, exist_ok=True)
        return _finish(config, teacher, _data_parallel(config, teacher))
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
    _sample(config, teacher, sampling, jobs, summary, next_shard(out, config.shard[0] if config.shard else None))
    return _finish(config, teacher, summary)


def _sampling(config: GenerateConfig, defaults, kinds: set) -> backends.Sampling:
    """The sampling settings: the flags, else models.yaml's; the code instruction for code problems."""
    if len(kinds) > 1:
        raise UserError(f"{config.prompts} mixes math and code problems (records with a 'tests' field are code): "
                        "sample them in two runs, into two --out folders, since they take different instructions")
    return backends.Sampling(
        temperature=defaults.temperature if config.temperature is None else config.temperature,
        top_p=defaults.top_p if config.top_p is None else config.top_p,
        max_tokens=config.max_tokens or defaults.max_new_tokens,
        prompt_suffix=CODE_PROMPT_SUFFIX if kinds == {"code"} else defaults.prompt_suffix,
        system_prompt=defaults.system_prompt, seed=config.seed)


def _sample(config: GenerateConfig, teacher: ResolvedTeacher, sampling, jobs, summary: dict, shard: Path) -> None:
    """Run `jobs` on the teacher's backend, each trace appended to `shard` as it comes, with a progress bar."""
    lock = threading.Lock()
    started = time.perf_counter()

    def write(record: TraceRecord) -> None:
        with lock:
            append_traces(shard, [record])

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn()]
    with Progress(*columns, disable=not config.show_progress, transient=False) as bar:
        task = bar.add_task(f"generate ({teacher.backend})", total=summary["total"],
                            completed=summary["already_done"], rate="")

        def progress(record: TraceRecord) -> None:
            summary["generated"] += 1
            summary["completion_tokens"] += record.completion_tokens or 0
            elapsed = max(time.perf_counter() - started, 1e-6)
            bar.update(task, advance=1, rate=f"{summary['generated'] / elapsed:.2f} traces/s, "
                                             f"{summary['completion_tokens'] / elapsed:.0f} tok/s")

        _run_backend(config, teacher, jobs, write, dict(teacher=teacher.name, sampling=sampling, progress=progress))
    elapsed = time.perf_counter() - started
    summary.update(seconds=round(elapsed, 3), traces_per_s=round(summary["generated"] / elapsed, 3),
                   tokens_per_s=round(summary["completion_tokens"] / elapsed, 1))


def _run_backend(config: GenerateConfig, teacher: ResolvedTeacher, jobs, write, common: dict) -> None:
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
                          max_model_len=teacher.max_model_len, **common)


def _finish(config: GenerateConfig, teacher: ResolvedTeacher, summary: dict) -> dict:
    out = Path(config.out)
    write_manifest(out, "generate", config=config, inputs={"prompts": config.prompts, "teacher": teacher.name},
                   outputs={"shards": sorted(p.name for p in out.glob(TRACE_SHARD_GLOB))}, metrics=summary)
    return summary


