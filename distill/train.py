"""`r1-distill train`: supervised fine-tuning of a student on kept traces, with TRL's SFTTrainer.

* The training chat template keeps the reasoning (the released R1 template drops everything before
  `</think>` from assistant turns) and marks with {% generation %} what carries loss: the reasoning,
  `</think>`, the answer and the end-of-sentence token. The prompt, "<think>\\n" included, carries none.
* Traces longer than max_length are dropped and counted, never cut (TRL would keep the start and cut
  the answer off); none left is an error.
* full, LoRA or QLoRA (bitsandbytes 4-bit, GPU) through PEFT; resumes from the last checkpoint.
* Writes an HF model folder with the inference template (forces "<think>\\n"), a manifest, a model
  card and the loss curve as PNG.
Multi-GPU and multi-node: `accelerate launch --config_file distill/accelerate/zero3.yaml -m r1_distill train ...`.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from r1_distill.chat_format import (FormatSpec, format_spec, prepare_model,
                                    prepare_tokenizer)
from r1_distill.distill.common import (BatchPlan, lora_config, partitioned_at_load, r1_generation_config, run_metrics,
                                      run_trainer, save_trained_model, shared_arguments, write_run_record)
from r1_distill.distill.distributed import (COLLECTIVE_TIMEOUT_MINUTES, Launch, current_launch,
                                            refuse_launches_that_cannot_run, resolve_precision, trainer_checkpointing,
                                            weights_dtype)
from r1_distill.errors import UserError, require
from r1_distill.files import write_json_atomic
from r1_distill.manifest import file_digest
from r1_distill.options import TRACE_FORMAT_HELP, internal, option
from r1_distill.registry import Recipe, Registry, load_registry, read_template
from r1_distill.traces import iter_traces


@dataclass
class TrainConfig:
    student: str = option(help="models.yaml student, hub id or HF folder.")
    traces: str = option(help="kept.jsonl from r1-distill filter, its dataset/ folder, a traces folder or a public "
                         "trace set's file.")
    out: str = option(help="Output model folder.")
    method: Optional[str] = option(None, help="full | lora | qlora | on-policy (default: the recipe).")
    learning_rate: Optional[float] = option(None, flags=("--lr", "--learning-rate"),
                                            help="Peak learning rate (default: the recipe).")
    epochs: Optional[float] = option(None, help="Passes over the traces (default: the recipe).")
    max_length: Optional[int] = option(None, help="Longer traces are dropped, not cut (default: the recipe).")
    effective_batch: Optional[int] = option(None, help="Sequences per optimizer step (default: the recipe).")
    per_device_batch: Optional[int] = option(None, help="Sequences per forward pass on each device.")
    resume: bool = option(False, help="Continue from the last checkpoint in OUT/checkpoints.")
    # below 1: a fraction of the run (a checkpoint of a 7B student is ~100 GB)
    save_steps: float = option(0.1, help="Checkpoint every N steps; below 1, a fraction of the run.")
    save_minutes: Optional[float] = option(None, help="Also checkpoint every N minutes.")
    logging_steps: Optional[int] = option(None, help="Log every N steps (default: about 100 points over the run).")
    group_by_length: bool = option(False, help="Batches of similar length (less padding on CPU).")
    precision: Optional[str] = option(None, help="bf16 | fp32 (default: bf16 on a GPU, fp32 on a CPU).")
    gradient_checkpointing: Optional[bool] = option(None, help="Recompute activations in the backward pass "
                                                    "(default: on a GPU).")
    seed: int = option(0, help="Random seed (data order, LoRA init).")
    print_logs: bool = internal(True)  # False: the progress bar only; the logs still go to log_history.json
    models_file: Optional[str] = internal(None)
    dataset_num_proc: Optional[int] = option(None, help="Tokenizing processes (default: every core for 5,000+ traces).")
    collective_timeout_minutes: float = option(COLLECTIVE_TIMEOUT_MINUTES, flags=("--collective-timeout",),
                                               help="Minutes a worker waits for the others (merges, big checkpoints).")
    # method "on-policy" (distill/onpolicy.py): the teacher scores the student's own samples
    teacher: Optional[str] = option(None, help="on-policy: the teacher (models.yaml teacher, hub id, HF folder; another "
                                    "tokenizer trains with TRL's GOLD, or URL of an OpenAI-compatible server).")
    lmbda: Optional[float] = option(None, help="on-policy: share of steps on the student's own samples (GKD's lambda; "
                                    "the rest on the traces' completions). Default 1.")
    divergence: Optional[str] = option(None, help="on-policy: forward | reverse | jsd (default reverse).")
    beta: Optional[float] = option(None, help="on-policy: JSD interpolation, 0 forward KL .. 1 reverse KL.")
    temperature: Optional[float] = option(None, help="on-policy: the student's sampling temperature (default 1).")
    max_new_tokens: Optional[int] = option(None, help="on-policy: tokens the student samples per prompt (default: "
                                           "the recipe's on_policy.max_new_tokens, else 256).")
    samples_per_prompt: Optional[int] = option(None, help="on-policy: the student's rollouts of each prompt "
                                               "(default: the recipe's on_policy.samples_per_prompt, else 1).")
    on_policy_trainer: Optional[str] = option(None, metavar="auto|distillation|gkd", help=(
        "on-policy, local teacher with the student's tokenizer: TRL's DistillationTrainer (chunked loss; vLLM "
        "generation when vLLM is installed) or GKDTrainer. Default auto: DistillationTrainer on a GPU at lambda 1, as "
        "TRL recommends, else GKD."))
    trace_format: Optional[str] = option(None, flags=("--format",), metavar="NAME", help=TRACE_FORMAT_HELP)


GENERIC_RECIPE = Recipe(method="full", learning_rate=2e-5, epochs=3, max_length=32768, effective_batch=128,
                        per_device_batch=1, gpus={"count": 1, "memory_gb_each": 80})


def student_format(registry: Registry, student) -> FormatSpec:
    """The chat format a student trains in: its registry entry's, else R1's (token map detected)."""
    if student is None:
        return format_spec(registry, "r1-distill")
    return format_spec(registry, student.chat_template, eos=student.eos_token, bos=student.bos_token,
                       pad=student.pad_token, token_map=student.token_map)


def prepared_tokenizer(base: str, student, registry: Registry):
    """The base's tokenizer given the student's chat format; with the base's config, the format and the plan
    the model must follow (prepare_model)."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
        model_config = AutoConfig.from_pretrained(base)
    except OSError as exc:
        raise UserError(f"cannot load the student's tokenizer from {base}: {str(exc).splitlines()[0]}") from None
    spec = student_format(registry, student)
    tokenizer, plan = prepare_tokenizer(tokenizer, model_config, spec, registry)
    return tokenizer, model_config, spec, plan


def resolve_student(config: TrainConfig):
    registry = load_registry(config.models_file)
    if config.student in registry.students:
        student = registry.students[config.student]
        base = student.base
        if base.startswith("tiny:"):
            from r1_distill.tiny import TinySpec, build_tiny_model

            base = str(build_tiny_model(TinySpec(architecture=base.split(":", 1)[1])))
        return student, base, student.recipe
    path = Path(config.student)
    if path.exists() and not (path / "config.json").is_file():
        raise UserError(f"{config.student} is not an HF model folder (no config.json)")
    return None, config.student, GENERIC_RECIPE


def to_messages(record) -> list[dict]:
    user = record.prompt or record.problem
    return [{"role": "user", "content": user, "reasoning_content": None},
            {"role": "assistant", "content": record.answer, "reasoning_content": record.reasoning}]


def _encode(messages: list[dict], tokenizer) -> dict:
    return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)


NO_TRAINED_SPAN = ("the training chat template marks no assistant tokens for loss: it needs {% generation %} markers "
                   "(r1_distill/templates/r1-distill-train.jinja)")


def build_dataset(records, tokenizer, max_length: int):
    """Conversational rows that fit max_length, and how many did not. Each row's trained span is checked."""
    from datasets import Dataset

    rows, too_long, lengths = [], 0, []
    for record in records:
        messages = to_messages(record)
        encoded = _encode(messages, tokenizer)
        n = len(encoded["input_ids"])
        if n > max_length:
            too_long += 1
            continue
        if not any(encoded["assistant_masks"]):
            raise UserError(NO_TRAINED_SPAN)
        rows.append({"messages": messages})
        lengths.append(n)
    return (Dataset.from_list(rows) if rows else None), too_long, lengths


# below this many traces tokenizing in one process is quicker than starting workers, and needs no progress bar
PARALLEL_TOKENIZE_FROM = 5000


def _tokenize_row(row: dict, tokenizer) -> dict:
    encoded = _encode(row["messages"], tokenizer)
    ids, mask = encoded["input_ids"], encoded["assistant_masks"]
    return {"input_ids": ids, "labels": [t if m else -100 for t, m in zip(ids, mask)], "length": len(ids),
            "trained": any(mask)}


def _kept_rows(path: str, format: Optional[str]):
    for record in iter_traces(path, format=format):
        if record.kept is not False:
            yield {"messages": to_messages(record), "unverified": record.kept is None}


def kept_messages(path: str, format: Optional[str], cache_dir: Path):
    """The kept traces of `path` as conversational rows in an Arrow file under `cache_dir`, written as they are
    read and memory-mapped after: a million traces never sit in this process's memory. None when none is kept."""
    from datasets import Dataset

    if next(_kept_rows(path, format), None) is None:
        return None
    with dataset_bars(False):
        rows = Dataset.from_generator(_kept_rows, gen_kwargs={"path": str(path), "format": format},
                                      cache_dir=str(cache_dir), keep_in_memory=False)
    return rows


def tokenized_dataset(messages, tokenizer, max_length: int, *, num_proc: Optional[int] = None):
    """The rows TRL's SFTTrainer trains on as they are (input_ids; labels -100 outside the trained span), so
    TRL tokenizes nothing again; rows over max_length are dropped and counted. `messages`: a dataset of
    conversational rows (kept_messages). Tokenized on `num_proc` cores (default: all of them for large sets).
    Returns (dataset or None, dropped, lengths)."""
    if num_proc is None and len(messages) >= PARALLEL_TOKENIZE_FROM:
        num_proc = min(len(os.sched_getaffinity(0)), 32)
    encoded = messages.map(_tokenize_row, fn_kwargs={"tokenizer": tokenizer},
                           remove_columns=messages.column_names,
                           num_proc=num_proc if num_proc and num_proc > 1 else None, desc="tokenizing traces")
    if not all(encoded["trained"]):
        raise UserError(NO_TRAINED_SPAN)
    all_lengths = encoded["length"]
    keep = [i for i, n in enumerate(all_lengths) if n <= max_length]
    too_long = len(all_lengths) - len(keep)
    if not keep:
        return None, too_long, []
    kept = encoded.select(keep) if too_long else encoded
    return kept.remove_columns(["trained"]), too_long, [all_lengths[i] for i in keep]


@contextmanager
def dataset_bars(shown: bool):
    """datasets' progress bars only where the work is long (a first small run is quiet)."""
    import datasets

    was = datasets.is_progress_bar_enabled()
    if not shown:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was and not shown:
            datasets.enable_progress_bars()


def _dataset_key(config: "TrainConfig", base: str, tokenizer, max_length: int) -> str:
    import hashlib

    traces = Path(config.traces)
    files = sorted(f for f in traces.rglob("*") if f.is_file()) if traces.is_dir() else [traces]
    stats = [f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]  # not a digest: 18 GB read per worker
    parts = [*stats, base, str(max_length), tokenizer.chat_template or "", str(len(tokenizer)), str(tokenizer.eos_token),
             str(tokenizer.bos_token)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def training_dataset(config: "TrainConfig", tokenizer, base: str, max_length: int, out: Path, args, launch: Launch):
    """The kept traces, tokenized once: the main process streams them into a memory-mapped Arrow file, tokenizes
    it and keeps the result in OUT/checkpoints/tokenized while the others wait (under the training arguments'
    collective timeout), then they read it; a rerun or a resume reads it too. A worker that cannot see the main
    process's folder (no shared disk between nodes) makes its own. Returns (dataset or None, the source's
    counts: traces kept, unverified, too long, and the lengths)."""
    from datasets import load_from_disk

    folder, key = out / "checkpoints" / "tokenized", _dataset_key(config, base, tokenizer, max_length)
    stamp = folder / "source.json"

    def saved():
        try:
            found = json.loads(stamp.read_text())
        except (OSError, ValueError):
            return None
        if found.get("key") != key:
            return None
        return (load_from_disk(str(folder / "rows")) if found["rows"] else None), found["counts"]

    with args.main_process_first(local=False, desc="tokenizing traces"):
        if (found := saved()) is None:
            found = _tokenize_once(config, tokenizer, max_length, args, folder, key)
    dataset, counts = found
    _report_source(config, counts, launch)
    return dataset, counts


def _tokenize_once(config: "TrainConfig", tokenizer, max_length: int, args, folder: Path, key: str):
    import shutil

    from datasets import load_from_disk

    staging = folder.with_name(f"tokenized.{args.process_index}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    messages = kept_messages(config.traces, config.trace_format, staging / "cache")
    if messages is None:
        counts = {"traces": 0, "unverified": 0, "too_long": 0, "lengths": []}
        dataset = None
    else:
        with dataset_bars(len(messages) >= PARALLEL_TOKENIZE_FROM):
            dataset, too_long, lengths = tokenized_dataset(messages, tokenizer, max_length, num_proc=args.dataset_num_proc)
        counts = {"traces": len(messages), "unverified": sum(messages["unverified"]), "too_long": too_long,
                  "lengths": lengths}
    if dataset is not None:
        dataset.save_to_disk(str(staging / "rows"))
    if args.process_index == 0:
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        write_json_atomic(folder / "source.json", {"key": key, "rows": dataset is not None, "counts": counts})
        shutil.rmtree(folder / "cache", ignore_errors=True)  # the messages: the tokenized rows are what trains
        dataset = load_from_disk(str(folder / "rows")) if dataset is not None else None
    return dataset, counts


def _report_source(config: "TrainConfig", counts: dict, launch: Launch) -> None:
    if not counts["traces"]:
        raise UserError(f"no kept traces in {config.traces}: run r1-distill filter first")
    if counts["unverified"] and launch.main:
        from rich.console import Console

        Console(stderr=True).print(f"[yellow]warning: {counts['unverified']} of {counts['traces']} traces in "
                                   f"{config.traces} were never filtered (no verdicts): unverified traces teach wrong "
                                   "reasoning too; run `r1-distill filter` and train on its kept.jsonl[/yellow]")


def quantization_kwargs(launch: Launch, *, bf16: bool, cuda: bool) -> dict:
    """from_pretrained's 4-bit settings for QLoRA, by launch: each DDP worker on its own GPU; under ZeRO-3 and FSDP
    no device map and a float storage dtype, which is what lets them shard the 4-bit weights (PEFT's and
    bitsandbytes' QLoRA + DeepSpeed/FSDP recipes)."""
    import torch
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if bf16 else torch.float32
    quant = dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                 bnb_4bit_compute_dtype=compute)
    if launch.sharded:
        return {"quantization_config": BitsAndBytesConfig(**quant, bnb_4bit_quant_storage=compute), "dtype": compute}
    return {"quantization_config": BitsAndBytesConfig(**quant), "device_map": {"": launch.local_rank if cuda else "cpu"}}


@dataclass
class SFTRun:
    """A train run's settings once the recipe, the launch and the hardware are resolved."""

    config: TrainConfig
    launch: Launch
    cuda: bool
    student: object  # the registry's student, or None for a hub id / folder
    base: str
    recipe: Recipe
    registry: Registry
    method: str
    max_length: int
    precision: str
    checkpointing: bool
    padding_free: bool
    batch: BatchPlan

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"

    @property
    def out(self) -> Path:
        return Path(self.config.out)


def train(config: TrainConfig) -> dict:
    if config.method == "on-policy":
        from r1_distill.distill.onpolicy import OnPolicyConfig, train_on_policy

        return train_on_policy(OnPolicyConfig.from_train(config))
    if config.teacher:
        raise UserError("--teacher goes with --method on-policy")
    import torch
    from trl import SFTTrainer

    run = _resolve_run(config)
    tokenizer, model_config, spec, plan = prepared_tokenizer(run.base, run.student, run.registry)
    tokenizer.chat_template = read_template(spec.train_template)
    sft = _sft_arguments(run, tokenizer)  # before the model: see _sft_arguments
    dataset, counts = training_dataset(config, tokenizer, run.base, run.max_length, run.out, sft, run.launch)
    if dataset is None:
        raise UserError(f"all {counts['too_long']} traces are longer than --max-length {run.max_length} tokens and were dropped: "
                        "raise --max-length (and the long-context settings) or filter with --max-tokens")
    sft.logging_steps = run.batch.logging_steps(len(dataset), sft.num_train_epochs, config.logging_steps)
    model, dtype, quantization = _load_student_model(run, model_config)
    zero3_load = partitioned_at_load(model)
    prepare_model(model, plan, tokenizer)
    recipe = run.recipe
    peft_config = lora_config(model, plan, r=recipe.lora_r, alpha=recipe.lora_alpha, dropout=recipe.lora_dropout) \
        if run.method in ("lora", "qlora") else None
    from r1_distill.distill.checkpoints import SaveEveryMinutes

    callbacks = [SaveEveryMinutes(config.save_minutes)] if config.save_minutes else None
    trainer = SFTTrainer(model=model, args=sft, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config,
                         callbacks=callbacks)
    result, resume_from = run_trainer(trainer, run.out / "checkpoints", resume=config.resume, print_logs=config.print_logs)
    tokenizer.chat_template = read_template(spec.template)

    def load_base():
        from transformers import AutoModelForCausalLM

        fresh = AutoModelForCausalLM.from_pretrained(run.base, config=model_config, dtype="auto")
        prepare_model(fresh, plan, tokenizer)
        return fresh

    save_trained_model(trainer, tokenizer, run.out, source=run.base, load_base=load_base if peft_config else None,
                       save_dtype=torch.bfloat16 if run.bf16 else None)
    if not trainer.is_world_process_zero():
        return {}
    r1_generation_config(tokenizer).save_pretrained(run.out)
    metrics = {"traces": counts["traces"], "trained_on": len(dataset), "dropped_too_long": counts["too_long"],
               "mean_tokens": sum(counts["lengths"]) / len(counts["lengths"]), **run_metrics(trainer, result, resume_from, run.launch),
               "quantization": quantization, "precision": run.precision,
               "weights_dtype": str(dtype).removeprefix("torch."), "padding_free": run.padding_free,
               "zero3_partitioned_at_load": zero3_load, "gradient_checkpointing": run.checkpointing,
               "chat_format": plan.as_dict()}
    write_run_record(run.out, "train", config=config, history=trainer.state.log_history,
                     inputs={"base": run.base, "traces": config.traces, "traces_digest": file_digest(config.traces)},
                     outputs={"model": ".", "adapter": "adapter" if peft_config else None}, metrics=metrics,
                     card=_model_card(config, run.base, run.method, metrics))
    return metrics


def _resolve_run(config: TrainConfig) -> SFTRun:
    import torch

    launch = current_launch()
    student, base, recipe = resolve_student(config)
    method = config.method or recipe.method
    if method not in ("full", "lora", "qlora"):
        raise UserError(f"unknown method {method!r}: full, lora, qlora or on-policy")
    cuda = torch.cuda.is_available()
    refuse_launches_that_cannot_run("train", launch, cuda=cuda)
    # Padding-free batches need an attention kernel that keeps packed sequences apart (FlashAttention on GPU);
    # CPU's SDPA does not. There --group-by-length cuts most of the padding instead; it is off by default
    # because same-length batches are less mixed (on the demo's task it cost the teacher much accuracy).
    return SFTRun(config=config, launch=launch, cuda=cuda, student=student, base=base, recipe=recipe,
                  registry=load_registry(config.models_file), method=method,
                  max_length=config.max_length or recipe.max_length,
                  precision=resolve_precision(config.precision, cuda),
                  checkpointing=trainer_checkpointing(config.gradient_checkpointing, cuda=cuda, launch=launch),
                  padding_free=cuda and _has("flash_attn"),
                  batch=BatchPlan.of(effective=config.effective_batch or recipe.effective_batch,
                                     per_device=config.per_device_batch or recipe.per_device_batch, world=launch.world))


def _sft_arguments(run: SFTRun, tokenizer):
    """TRL's SFTConfig. The arguments come before the model: they make the process group (with their timeout)
    and, under ZeRO-3, the DeepSpeed config that from_pretrained reads to load each worker's share only (zero.Init)."""
    from trl import SFTConfig

    config, recipe = run.config, run.recipe
    return SFTConfig(
        **shared_arguments(checkpoints=run.out / "checkpoints", bf16=run.bf16, cuda=run.cuda, seed=config.seed,
                           collective_timeout_minutes=config.collective_timeout_minutes,
                           checkpointing=run.checkpointing, save_steps=config.save_steps),
        num_train_epochs=config.epochs or recipe.epochs, learning_rate=config.learning_rate or recipe.learning_rate,
        per_device_train_batch_size=run.batch.per_device, gradient_accumulation_steps=run.batch.accumulation,
        lr_scheduler_type=recipe.lr_scheduler, warmup_steps=recipe.warmup_ratio, weight_decay=recipe.weight_decay,
        max_length=None, assistant_only_loss=False,
        dataset_kwargs={"skip_prepare_dataset": True},  # rows come tokenized, with their labels
        eos_token=tokenizer.eos_token, dataset_num_proc=config.dataset_num_proc, padding_free=run.padding_free,
        use_liger_kernel=run.cuda and _has("liger_kernel"),
        train_sampling_strategy="group_by_length" if config.group_by_length and not run.padding_free else "random",
    )


def _load_student_model(run: SFTRun, model_config):
    """The student's weights: fp32 masters where nothing else keeps them, 4-bit for QLoRA, the long-context
    RoPE where the recipe trains past the native context. Returns (model, weights dtype, quantization)."""
    from transformers import AutoModelForCausalLM

    kwargs: dict = {"dtype": weights_dtype(run.precision, full=run.method == "full", launch=run.launch)}
    student = run.student
    if student is not None and student.long_context and run.max_length > student.native_context:
        model_config.max_position_embeddings = student.long_context.max_position_embeddings
        rope = dict(getattr(model_config, "rope_parameters", None) or {"rope_type": "default"})
        rope["rope_theta"] = student.long_context.rope_theta
        model_config.rope_parameters = rope
    quantization = None
    if run.method == "qlora":
        # bitsandbytes >= 0.49 runs 4-bit on CPU too (slowly): fine for trying the path, the real thing is a GPU
        require("bitsandbytes", "gpu", "QLoRA")
        kwargs.update(quantization_kwargs(run.launch, bf16=run.bf16, cuda=run.cuda))
        quantization = f"bitsandbytes nf4 ({'cuda' if run.cuda else 'cpu'})"
    if run.padding_free:
        kwargs["attn_implementation"] = "flash_attention_2"
    model = AutoModelForCausalLM.from_pretrained(run.base, config=model_config, **kwargs)
    return model, kwargs["dtype"], quantization


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _model_card(config: TrainConfig, base: str, method: str, metrics: dict) -> str:
    loss = f"{metrics['first_loss']:.3f} -> {metrics['final_loss']:.3f}" if metrics["first_loss"] is not None else "n/a"
    return (f"---\nbase_model: {base}\ntags: [r1-distill, reasoning, distillation]\n---\n\n"
            f"# {Path(config.out).name}\n\nDistilled from `{config.traces}` with r1-distill ({method}).\n\n"
            f"| figure | value |\n|---|---|\n| traces trained on | {metrics['trained_on']} |\n"
            f"| dropped (over max length) | {metrics['dropped_too_long']} |\n| steps | {metrics['steps']} |\n"
            f"| loss (first -> last) | {loss} |\n\nThe chat template forces `<think>\\n`: the model thinks first. "
            "Evaluation results are added by `r1-distill eval`.\n")
