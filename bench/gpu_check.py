"""What only a GPU shows, on one GPU in under 10 minutes: each check runs `r1-distill` in its own process
with its own timeout (one failing check does not stop the others), and the script prints one JSON line of
what held, tokens/s and peak GPU memory per check, with the GPU and the versions.

  padding_free_sft     `train` of a Qwen2.5-1.5B-shape model (random weights) on ~8k-token traces,
                       --max-length 8192, flash-attn: held when the manifest says padding_free true
  bf16_master_weights  full fine-tuning of a small random model, --precision bf16 --lr 1e-6, 10 steps:
                       held when most saved weights differ from the initial ones (fp32 master weights)
  grpo_colocate_vllm   `grpo` with vLLM colocated on the 1.5B shape with 131,072 positions (vLLM's KV check
                       fires without a max model length): held when the manifest's generator is vllm-colocate
  generate_vllm        `generate --backend vllm` on the small model: held when every trace is written
  qlora                `train --method qlora` on the 1.5B shape: held when the merged model loads unquantized

Peak GPU memory is nvidia-smi's memory.used, sampled every 0.5 s while a check runs.

    python bench/gpu_check.py [--dry-run] [--only NAME[,NAME]] [--out DIR] [--timeout-per-check S] [--budget S]

--dry-run (a CPU, seconds) builds the plan, checks that `r1-distill` accepts every planned flag and prints the
plan as one JSON line; it exits 1 when a flag is missing or the tokenizer fixtures are absent. A GPU run exits 0
when no check failed (skipped ones aside), 1 otherwise; --out keeps the models, runs and logs (and a second run
reuses the models), --budget (default 570 s) bounds the whole run, later checks getting what is left.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CHECKS = ("padding_free_sft", "bf16_master_weights", "grpo_colocate_vllm", "generate_vllm", "qlora", "fsdp2")
TOTAL_BUDGET_S = 570  # a lent machine runs one command for at most 600 s
NO_GPU = "no CUDA GPU: run with --dry-run to check the plan"
# distribution name -> key in the JSON line
VERSIONED = {"torch": "torch", "transformers": "transformers", "trl": "trl", "peft": "peft", "accelerate": "accelerate",
             "deepspeed": "deepspeed", "vllm": "vllm", "flash-attn": "flash_attn", "bitsandbytes": "bitsandbytes",
             "liger-kernel": "liger_kernel"}

# Qwen/Qwen2.5-1.5B's config.json: 131,072 positions, the case where vLLM's KV check fires without a max length
QWEN25_15B = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                  num_key_value_heads=2, max_position_embeddings=131072, rope_theta=1000000.0, vocab_size=151936,
                  tie_word_embeddings=True, rms_norm_eps=1e-6, max_window_layers=28, sliding_window=None,
                  use_sliding_window=False, bos_token_id=151643, eos_token_id=151643)
SMALL = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=4096)  # head size 64, float32 weights; Qwen2.5's tokenizer and 151,936 rows
LONG_TRACES, LONG_TRACE_TOKENS = 6, 7800  # with the prompt and the template, under --max-length 8192
SHORT_TRACES, SHORT_TRACE_TOKENS = 10, 200
PROMPTS, SAMPLES = 8, 2


# ----------------------------------------------------------------------------------------------------------------
# the plan


@dataclass(frozen=True)
class Layout:
    out: Path

    @property
    def big_model(self) -> Path:
        return self.out / "models" / "qwen2.5-1.5b-random"

    @property
    def small_model(self) -> Path:
        return self.out / "models" / "small-random"

    @property
    def long_traces(self) -> Path:
        return self.out / "data" / "long-traces.jsonl"

    @property
    def short_traces(self) -> Path:
        return self.out / "data" / "short-traces.jsonl"

    @property
    def prompts(self) -> Path:
        return self.out / "data" / "prompts.jsonl"

    @property
    def fsdp2_config(self) -> Path:
        return self.out / "data" / "fsdp2-one-gpu.yaml"

    def run(self, check: str) -> Path:
        return self.out / "runs" / check

    def log(self, name: str) -> Path:
        return self.out / "logs" / f"{name}.log"


@dataclass(frozen=True)
class Check:
    name: str
    model: str  # qwen2.5-1.5b | small
    inputs: tuple[str, ...]  # what --prepare builds for it
    command: list[str]
    held_when: str
    needs: str | None = None  # a module the check cannot run without


def plan_checks(layout: Layout) -> list[Check]:
    cli = [sys.executable, "-m", "r1_distill"]
    one_epoch = ["--epochs", "1", "--save-steps", "1000000"]  # no checkpoints: the checks time the steps
    big, small, run = str(layout.big_model), str(layout.small_model), layout.run
    return [
        Check("padding_free_sft", "qwen2.5-1.5b", ("big_model", "long_traces"),
              cli + ["train", "--student", big, "--traces", str(layout.long_traces), "--out", str(run("padding_free_sft")),
                     "--method", "full", "--max-length", "8192", "--per-device-batch", "2", "--effective-batch", "2"]
              + one_epoch,
              "exit 0 and the manifest's metrics say padding_free true", needs="flash_attn"),
        Check("bf16_master_weights", "small", ("small_model", "short_traces"),
              cli + ["train", "--student", small, "--traces", str(layout.short_traces),
                     "--out", str(run("bf16_master_weights")), "--method", "full", "--precision", "bf16", "--lr", "1e-6",
                     "--max-length", "1024", "--per-device-batch", "1", "--effective-batch", "1", "--epochs", "1",
                     "--save-steps", str(SHORT_TRACES)],
              "exit 0 and over half the elements of the last checkpoint's weights (the fp32 masters; the final "
              "model is saved in bf16) differ from the initial ones"),
        Check("grpo_colocate_vllm", "qwen2.5-1.5b", ("big_model", "prompts"),
              cli + ["grpo", "--model", big, "--prompts", str(layout.prompts), "--out", str(run("grpo_colocate_vllm")),
                     "--steps", "3", "--num-generations", "4", "--prompts-per-step", "2",
                     "--max-completion-length", "128", "--use-vllm", "--vllm-max-model-length", "1024",
                     "--vllm-gpu-memory-utilization", "0.3"],
              "exit 0 and the manifest's metrics say generator vllm-colocate", needs="vllm"),
        Check("generate_vllm", "small", ("small_model", "prompts"),
              cli + ["generate", "--teacher", small, "--backend", "vllm", "--prompts", str(layout.prompts),
                     "--out", str(run("generate_vllm")), "--samples", str(SAMPLES), "--max-tokens", "256"],
              f"exit 0 and all {PROMPTS * SAMPLES} traces written", needs="vllm"),
        Check("qlora", "qwen2.5-1.5b", ("big_model", "long_traces"),
              cli + ["train", "--student", big, "--traces", str(layout.long_traces), "--out", str(run("qlora")),
                     "--method", "qlora", "--max-length", "8192", "--per-device-batch", "2", "--effective-batch", "2"]
              + one_epoch,
              "exit 0 and the merged model loads without a quantization config", needs="bitsandbytes"),
        Check("fsdp2", "small", ("small_model", "short_traces", "fsdp2_config"),
              [str(Path(sys.executable).with_name("accelerate")), "launch", "--config_file", str(layout.fsdp2_config),
               "-m", "r1_distill", "train", "--student", small, "--traces", str(layout.short_traces),
               "--out", str(run("fsdp2")), "--method", "full", "--precision", "bf16", "--max-length", "1024",
               "--per-device-batch", "1", "--effective-batch", "1"] + one_epoch,
              "exit 0, the trainer ran FSDP2 (the manifest's distributed) and saved bf16 weights, not FSDP's fp32"),
    ]


def qwen2_parameters(hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads,
                     vocab_size, tie_word_embeddings=True, **_) -> int:
    head = hidden_size // num_attention_heads
    attention = (hidden_size * hidden_size + hidden_size) + 2 * (hidden_size * num_key_value_heads * head
                                                                 + num_key_value_heads * head) + hidden_size * hidden_size
    layer = attention + 3 * hidden_size * intermediate_size + 2 * hidden_size
    return vocab_size * hidden_size * (1 if tie_word_embeddings else 2) + num_hidden_layers * layer + hidden_size


def model_shapes() -> dict:
    small = {**SMALL, "vocab_size": 151936, "tie_word_embeddings": True, "dtype": "float32"}
    big = {**QWEN25_15B, "dtype": "bfloat16"}
    return {"qwen2.5-1.5b": {**big, "parameters": qwen2_parameters(**big)},
            "small": {**small, "parameters": qwen2_parameters(**small)}}


def shown(command: list[str]) -> str:
    launcher = str(Path(sys.executable).with_name("accelerate"))
    return shlex.join(["python" if c == sys.executable else "accelerate" if c == launcher else c for c in command])


# ----------------------------------------------------------------------------------------------------------------
# the CLI's flags


def cli_flags(subcommand: str) -> tuple[set[str], str | None]:
    """The flags `r1-distill SUBCOMMAND --help` lists, and an error when the help did not come."""
    env = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"}
    try:
        out = subprocess.run([sys.executable, "-m", "r1_distill", subcommand, "--help"], capture_output=True, text=True,
                             timeout=120, cwd=REPO, env=env)
    except subprocess.TimeoutExpired:
        return set(), f"`r1-distill {subcommand} --help` took over 120 s"
    if out.returncode != 0:
        return set(), f"`r1-distill {subcommand} --help` exited {out.returncode}: {last_lines(out.stderr)}"
    return set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", out.stdout)), None


def missing_flags(checks: list[Check]) -> tuple[dict, dict]:
    """{check: [flags its command passes that the CLI does not list]}, {subcommand: help error}."""
    def stage(command: list[str]) -> int:  # where the r1-distill subcommand is (after `-m r1_distill`)
        return command.index("r1_distill") + 1

    subcommands = sorted({c.command[stage(c.command)] for c in checks})
    with ThreadPoolExecutor(len(subcommands)) as pool:
        helps = dict(zip(subcommands, pool.map(cli_flags, subcommands)))
    missing = {}
    for c in checks:
        at = stage(c.command)
        known, _ = helps[c.command[at]]
        absent = [a for a in c.command[at + 1:] if a.startswith("--") and a not in known]
        if absent:
            missing[c.name] = absent
    return missing, {s: err for s, (_, err) in helps.items() if err}


# ----------------------------------------------------------------------------------------------------------------
# the machine


def versions() -> dict:
    found = {}
    for dist, key in VERSIONED.items():
        try:
            found[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[key] = None
    return found


def importable(module: str) -> str | None:
    """None when `import module` works, else why not."""
    import importlib
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return f"{module} not installed"
    try:
        importlib.import_module(module)
    except Exception as exc:  # an ABI mismatch, a missing CUDA library
        return f"{module} not importable: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def machine_info() -> dict:
    """Run in its own process (--machine-info): torch, CUDA, the GPU, and which optional modules import."""
    info = {"torch": None, "cuda": None, "cuda_available": False, "gpu": None, "gpu_count": 0, "gpu_memory_mib": None,
            "unavailable": {}}
    try:
        import torch
    except Exception as exc:
        info["torch_error"] = f"{type(exc).__name__}: {exc}"
        return info
    info.update(torch=torch.__version__, cuda=torch.version.cuda)
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(cuda_available=True, gpu=props.name, gpu_count=torch.cuda.device_count(),
                    gpu_memory_mib=props.total_memory // 2**20)
        for module in ("flash_attn", "vllm", "bitsandbytes"):
            info["unavailable"][module] = importable(module)
    return info


def read_machine_info() -> dict:
    try:
        out = subprocess.run([sys.executable, __file__, "--machine-info"], capture_output=True, text=True, timeout=300,
                             cwd=REPO)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as exc:
        return {"cuda_available": False, "error": f"machine info failed: {type(exc).__name__}"}


def gpu_memory_used_mib() -> int | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10)
        return int(out.stdout.split()[0])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return None


class GpuMemorySampler:
    """The largest memory.used nvidia-smi reports while the block runs, every `every` seconds."""

    def __init__(self, every: float = 0.5):
        self.every, self.peak = every, None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self):
        while True:
            used = gpu_memory_used_mib()
            if used is not None:
                self.peak = used if self.peak is None else max(self.peak, used)
            if self.stopped.wait(self.every):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join()


def wait_for_gpu_memory(idle_mib: int | None, seconds: float = 20):
    """The last check's processes may take a moment to hand their memory back."""
    deadline = time.time() + seconds
    while idle_mib is not None and time.time() < deadline:
        used = gpu_memory_used_mib()
        if used is None or used <= idle_mib + 512:
            return
        time.sleep(0.5)


# ----------------------------------------------------------------------------------------------------------------
# running one step


PROGRESS_BAR = re.compile(r"\d+%\||\d+it/s\]|\d+s/it\]")


def last_lines(text: str, count: int = 3, limit: int = 600) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not PROGRESS_BAR.search(line)]
    errors = [line for line in lines if line.startswith("error:") or re.match(r"^\w*(Error|Exception)\b", line)]
    return " | ".join(errors[-1:] or lines[-count:])[-limit:]


def run_step(command: list[str], log: Path, timeout: float) -> dict:
    """Run `command` in its own process group, output to `log`; exit code, seconds, peak GPU MiB, output tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    with open(log, "w") as fh, GpuMemorySampler() as sampler:
        proc = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            rc, timed_out = None, True
        finally:
            kill_group(proc)  # vLLM's engine processes too
    return {"rc": rc, "timed_out": timed_out, "seconds": round(time.perf_counter() - start, 1),
            "peak_gpu_mib": sampler.peak, "tail": last_lines(log.read_text(errors="replace"))}


def kill_group(proc: subprocess.Popen):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


# ----------------------------------------------------------------------------------------------------------------
# --prepare: the models, traces and prompts, built in their own process


def build_big_model(path: Path):
    """Qwen2.5-1.5B's shape in bf16 with random weights, and Qwen2.5's tokenizer as the hub ships it."""
    if (path / ".complete").exists():
        return
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    from r1_distill.tiny import load_tiny_tokenizer

    config = Qwen2Config(**QWEN25_15B, dtype="bfloat16")
    config.rope_parameters = {"rope_type": "default", "rope_theta": QWEN25_15B["rope_theta"]}
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # initialised in bf16: half the memory and time of float32
    try:
        model = Qwen2ForCausalLM(config)
    finally:
        torch.set_default_dtype(default_dtype)
    count = sum(p.numel() for p in model.parameters())
    assert count == qwen2_parameters(**QWEN25_15B), f"{count} parameters, not Qwen2.5-1.5B's"
    model.generation_config = GenerationConfig(bos_token_id=151643, eos_token_id=151643)
    model.save_pretrained(path)
    tokenizer = load_tiny_tokenizer("qwen2.5-math")
    tokenizer.model_max_length = QWEN25_15B["max_position_embeddings"]  # as Qwen2.5-1.5B's tokenizer_config.json
    tokenizer.save_pretrained(path)
    (path / ".complete").write_text("ok")


def build_small_model(path: Path):
    from r1_distill.tiny import TinySpec, build_tiny_model

    build_tiny_model(TinySpec(architecture="qwen2.5-math", **SMALL), out_dir=path)


def synthetic_reasoning(rng, tokenizer, tokens: int) -> tuple[str, int]:
    """Checked additions until the text is `tokens` tokens long; the reasoning and the last sum."""
    lines, count, total = [], 0, 0
    while count < tokens:
        a, b = rng.randint(100, 9999), rng.randint(100, 9999)
        total = a + b
        line = f"Step {len(lines) + 1}: {a} + {b} = {total}; check: {total} - {b} = {a}, so the sum holds."
        count += len(tokenizer.encode(line + "\n", add_special_tokens=False))
        lines.append(line)
    return "\n".join(lines), total


def write_synthetic_traces(path: Path, count: int, tokens: int, seed: int):
    import random

    from r1_distill.tiny import load_tiny_tokenizer
    from r1_distill.traces import TraceRecord, write_traces

    rng, tokenizer = random.Random(seed), load_tiny_tokenizer("qwen2.5-math")
    records = []
    for i in range(count):
        reasoning, answer = synthetic_reasoning(rng, tokenizer, tokens)
        records.append(TraceRecord.from_completion(
            problem_id=f"synthetic-{i}", problem="Add the numbers step by step and check each sum.",
            reference_answer=str(answer), sample_index=0, teacher="synthetic", backend="synthetic", kept=True,
            finish_reason="stop", completion=f"{reasoning}\n</think>\n\nThe answer is \\boxed{{{answer}}}."))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_traces(path, records)


def write_prompts(path: Path):
    import random

    rng = random.Random(0)
    rows = []
    for i in range(PROMPTS):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        rows.append({"id": f"sum-{i}", "problem": f"What is {a} + {b}?", "answer": str(a + b)})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_fsdp2_config(path: Path):
    """The shipped fsdp2.yaml on the one GPU at hand (accelerate runs FSDP only on GPUs; one process is enough to
    exercise sharding's wrapping, the full-state-dict save and its dtype)."""
    import yaml

    config = yaml.safe_load((REPO / "distill" / "accelerate" / "fsdp2.yaml").read_text())
    config.update(num_processes=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))


def prepare(layout: Layout, items: list[str]):
    builders = {"big_model": lambda: build_big_model(layout.big_model),
                "small_model": lambda: build_small_model(layout.small_model),
                "long_traces": lambda: write_synthetic_traces(layout.long_traces, LONG_TRACES, LONG_TRACE_TOKENS, 1),
                "short_traces": lambda: write_synthetic_traces(layout.short_traces, SHORT_TRACES, SHORT_TRACE_TOKENS, 2),
                "prompts": lambda: write_prompts(layout.prompts),
                "fsdp2_config": lambda: write_fsdp2_config(layout.fsdp2_config)}
    seconds = {}
    for item in items:
        start = time.perf_counter()
        builders[item]()
        seconds[item] = round(time.perf_counter() - start, 1)
    print(json.dumps({"prepared": seconds}))


# ----------------------------------------------------------------------------------------------------------------
# what held


def manifest_metrics(run: Path) -> dict:
    path = run / "manifest.json"
    if not path.is_file():
        raise CheckFailed("no manifest.json written")
    return json.loads(path.read_text())["metrics"]


class CheckFailed(Exception):
    pass


def sft_tokens_per_s(metrics: dict) -> float | None:
    if not metrics.get("train_runtime_s") or not metrics.get("mean_tokens"):
        return None
    return round(metrics["trained_on"] * metrics["mean_tokens"] / metrics["train_runtime_s"], 1)


def sft_summary(metrics: dict) -> dict:
    keys = ("steps", "trained_on", "dropped_too_long", "mean_tokens", "precision", "gradient_checkpointing",
            "train_runtime_s", "padding_free", "quantization")
    return {**{k: metrics.get(k) for k in keys}, "tokens_per_s": sft_tokens_per_s(metrics)}


def verify_padding_free_sft(layout: Layout) -> dict:
    metrics = manifest_metrics(layout.run("padding_free_sft"))
    if "padding_free" not in metrics:
        raise CheckFailed("the manifest's metrics have no padding_free")
    return {"held": metrics["padding_free"] is True, **sft_summary(metrics)}


def load_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    weights = {}
    for file in sorted(folder.glob("*.safetensors")):
        weights.update(load_file(str(file)))
    if not weights:
        raise CheckFailed(f"no safetensors in {folder}")
    return weights


def changed_fraction(initial: dict, saved: dict) -> dict:
    """Elements that differ, compared in the saved dtype (an initial float32 weight rounded to a saved bf16 one
    counts as unchanged): what a run that never moved the weights would leave equal."""
    changed = total = 0
    skipped, dtypes = [], set()
    for name, after in saved.items():
        before = initial.get(name)
        if before is None or before.shape != after.shape:
            skipped.append(name)
            continue
        changed += int((before.to(after.dtype) != after).sum())
        total += after.numel()
        dtypes.add(str(after.dtype).replace("torch.", ""))
    if not total:
        raise CheckFailed("no saved tensor matches an initial one by name and shape")
    return {"changed_fraction": round(changed / total, 4), "compared_elements": total,
            "saved_dtype": ",".join(sorted(dtypes)), "tensors_not_compared": len(skipped)}


def verify_bf16_master_weights(layout: Layout) -> dict:
    metrics = manifest_metrics(layout.run("bf16_master_weights"))
    checkpoints = sorted((layout.run("bf16_master_weights") / "checkpoints").glob("checkpoint-*"),
                         key=lambda p: int(p.name.split("-")[1]))
    if not checkpoints:
        raise CheckFailed("no checkpoint was saved")
    moved = changed_fraction(load_weights(layout.small_model), load_weights(checkpoints[-1]))
    return {"held": moved["changed_fraction"] > 0.5 and metrics.get("precision") == "bf16", **moved,
            **sft_summary(metrics)}


def verify_grpo_colocate_vllm(layout: Layout) -> dict:
    run = layout.run("grpo_colocate_vllm")
    metrics = manifest_metrics(run)
    tokens = None
    history = run / "log_history.json"
    if history.is_file():
        counts = [h["num_tokens"] for h in json.loads(history.read_text()) if "num_tokens" in h]
        tokens = max(counts) if counts else None
    runtime = metrics.get("train_runtime_s")
    return {"held": metrics.get("generator") == "vllm-colocate", "generator": metrics.get("generator"),
            "steps": metrics.get("steps"), "train_runtime_s": runtime, "tokens": tokens,
            "tokens_per_s": round(tokens / runtime, 1) if tokens and runtime else None}


def verify_generate_vllm(layout: Layout, wall_s: float) -> dict:
    rows = []
    for shard in sorted(layout.run("generate_vllm").glob("traces-*.jsonl")):
        rows += [json.loads(line) for line in shard.read_text().splitlines() if line.strip()]
    tokens = sum(r.get("completion_tokens") or 0 for r in rows)
    generating_s = sum({r["latency_s"] for r in rows if r.get("latency_s")})  # one latency per engine call
    return {"held": len(rows) == PROMPTS * SAMPLES, "traces": len(rows), "completion_tokens": tokens,
            "generating_s": round(generating_s, 2),
            "tokens_per_s": round(tokens / generating_s, 1) if generating_s else None,
            "tokens_per_s_with_engine_start": round(tokens / wall_s, 1) if wall_s else None}


def verify_qlora(layout: Layout) -> dict:
    run = layout.run("qlora")
    metrics = manifest_metrics(run)
    config = json.loads((run / "config.json").read_text())
    if "quantization_config" in config:
        raise CheckFailed("the merged model is still quantized (config.json has a quantization_config)")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(run, dtype="auto")  # on the CPU: this process keeps off the GPU
    parameters = sum(p.numel() for p in model.parameters())
    return {"held": parameters == qwen2_parameters(**QWEN25_15B) and (run / "adapter").is_dir(),
            "merged_parameters": parameters, **sft_summary(metrics)}


def verify_fsdp2(layout: Layout) -> dict:
    from safetensors import safe_open

    run = layout.run("fsdp2")
    metrics = manifest_metrics(run)
    with safe_open(str(run / "model.safetensors"), "pt") as weights:
        dtypes = sorted({str(weights.get_slice(name).get_dtype()) for name in weights.keys()})
    return {"held": metrics.get("distributed") == "fsdp" and dtypes == ["BF16"], "distributed": metrics.get("distributed"),
            "saved_dtypes": dtypes, **sft_summary(metrics)}


def verify(check: Check, layout: Layout, step: dict) -> dict:
    if check.name == "padding_free_sft":
        return verify_padding_free_sft(layout)
    if check.name == "bf16_master_weights":
        return verify_bf16_master_weights(layout)
    if check.name == "grpo_colocate_vllm":
        return verify_grpo_colocate_vllm(layout)
    if check.name == "generate_vllm":
        return verify_generate_vllm(layout, step["seconds"])
    if check.name == "fsdp2":
        return verify_fsdp2(layout)
    return verify_qlora(layout)


def run_check(check: Check, layout: Layout, timeout: float, idle_mib: int | None) -> dict:
    shutil.rmtree(layout.run(check.name), ignore_errors=True)  # a kept --out: start fresh, never resume
    wait_for_gpu_memory(idle_mib)
    step = run_step(check.command, layout.log(check.name), timeout)
    result = {"held": False, "seconds": step["seconds"], "peak_gpu_mib": step["peak_gpu_mib"], "tokens_per_s": None}
    if step["timed_out"]:
        return {**result, "failed": f"timed out after {timeout:.0f} s" + (f": {step['tail']}" if step["tail"] else "")}
    if step["rc"] != 0:
        return {**result, "failed": f"exit {step['rc']}: {step['tail']}"}
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the one JSON line
            return {**result, **verify(check, layout, step)}
    except CheckFailed as exc:
        return {**result, "failed": str(exc)}
    except Exception as exc:  # a check that broke in an unforeseen way still reports, and the others run
        return {**result, "failed": f"verifying: {type(exc).__name__}: {exc}"[:600]}


def skipped(reason: str) -> dict:
    return {"held": None, "skipped": reason}


# ----------------------------------------------------------------------------------------------------------------
# the command line


class Arguments(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage, exit 2
        fail(message)


def fail(message: str):
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = Arguments(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="build and print the plan, check the CLI's flags")
    parser.add_argument("--only", default=None, help=f"comma-separated checks: {', '.join(CHECKS)}")
    parser.add_argument("--out", default=None, help="keep models, runs and logs here (default: a temporary folder)")
    parser.add_argument("--timeout-per-check", type=float, default=240.0, help="seconds (default 240)")
    parser.add_argument("--budget", type=float, default=TOTAL_BUDGET_S,
                        help=f"seconds for the whole run; later checks get what is left (default {TOTAL_BUDGET_S})")
    parser.add_argument("--machine-info", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.checks = selected_checks(args.only)
    if not args.timeout_per_check > 0:
        fail(f"--timeout-per-check must be positive seconds, not {args.timeout_per_check:g}")
    if not args.budget > 0:
        fail(f"--budget must be positive seconds, not {args.budget:g}")
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        fail(f"--out {args.out} is a file, not a folder")
    return args


def selected_checks(only: str | None) -> list[str]:
    if only is None:
        return list(CHECKS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in CHECKS]
    if unknown or not names:
        fail(f"unknown check {', '.join(map(repr, unknown)) or repr(only)}: use {', '.join(CHECKS)}")
    return [n for n in CHECKS if n in names]


def fixtures() -> str | None:
    from r1_distill.tiny import fixtures_dir

    found = fixtures_dir()
    return str(found) if found else None


def dry_run(args, layout: Layout) -> int:
    checks = [c for c in plan_checks(layout) if c.name in args.checks]
    missing, help_errors = missing_flags(checks)
    found = fixtures()
    print(json.dumps({
        "bench": "gpu_check", "dry_run": True, "out": str(layout.out), "timeout_per_check_s": args.timeout_per_check,
        "budget_s": args.budget, "fixtures": found, "models": model_shapes(),
        "checks": {c.name: {"model": c.model, "command": shown(c.command), "held_when": c.held_when, "needs": c.needs}
                   for c in checks},
        "missing_flags": missing, "help_errors": help_errors, "versions": versions(), **machine_summary()}))
    return 0 if not missing and not help_errors and found else 1


def machine_summary() -> dict:
    summary = machine()
    summary.pop("versions", None)  # ours, with the GPU stack's packages
    return summary


def gpu_run(args, layout: Layout, info: dict) -> int:
    start = time.time()
    deadline = start + args.budget
    checks = [c for c in plan_checks(layout) if c.name in args.checks]
    results = {c.name: skipped(info["unavailable"][c.needs]) for c in checks if c.needs and info["unavailable"].get(c.needs)}
    runnable = [c for c in checks if c.name not in results]
    missing, _ = missing_flags(runnable)
    idle_mib = gpu_memory_used_mib()
    items = sorted({item for c in runnable for item in c.inputs})
    prepared = None
    if items:
        prepared = run_step([sys.executable, __file__, "--prepare", ",".join(items), "--out", str(layout.out)],
                            layout.log("prepare"), max(1.0, min(300.0, deadline - time.time())))
    for c in runnable:
        left = deadline - time.time() - 10
        if prepared["rc"] != 0:
            results[c.name] = {"held": False, "failed": f"preparing models and data failed: {prepared['tail']}"}
        elif left < 30:
            results[c.name] = skipped(f"out of time (--budget {args.budget:g} s)")
        else:
            results[c.name] = run_check(c, layout, min(args.timeout_per_check, left), idle_mib)
        results[c.name]["command"] = shown(c.command)
        if c.name in missing:
            results[c.name]["missing_flags"] = missing[c.name]
    ordered = {name: results[name] for name in args.checks}
    print(json.dumps({
        "bench": "gpu_check", "dry_run": False,
        "held": {n: ("skipped" if r["held"] is None else r["held"]) for n, r in ordered.items()},
        "checks": ordered, "prepare_s": prepared["seconds"] if prepared else None, "total_s": round(time.time() - start, 1),
        "gpu": {"name": info["gpu"], "count": info["gpu_count"], "memory_mib": info["gpu_memory_mib"], "idle_mib": idle_mib},
        "models": model_shapes(), "versions": {**versions(), "torch": info["torch"], "cuda": info["cuda"]},
        **machine_summary()}))
    return 0 if all(r["held"] is not False for r in ordered.values()) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.machine_info:
        print(json.dumps(machine_info()))
        return 0
    temporary = args.out is None
    layout = Layout(Path(args.out or tempfile.mkdtemp(prefix="r1-gpu-check-")).resolve())
    try:
        if args.prepare is not None:
            prepare(layout, [i for i in args.prepare.split(",") if i])
            return 0
        if args.dry_run:
            return dry_run(args, layout)
        info = read_machine_info()
        if not info.get("cuda_available"):
            fail(NO_GPU)
        if fixtures() is None:
            fail("tokenizer fixtures not found: put the shared/ folder beside the checkout, or set R1_DISTILL_FIXTURES")
        return gpu_run(args, layout, info)
    finally:
        if temporary:
            shutil.rmtree(layout.out, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
