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
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from r1_distill.chat_format import (FormatPlan, FormatSpec, embedding_modules, format_spec, prepare_model,
                                    prepare_tokenizer)
from r1_distill.distill.checkpoints import SaveEveryMinutes, last_complete_checkpoint
from r1_distill.distill.console import keep_bar_only
from r1_distill.distill.distributed import (COLLECTIVE_TIMEOUT_MINUTES, Launch, current_launch, engine_of,
                                            refuse_launches_that_cannot_run, resolve_precision, trainer_checkpointing,
                                            weights_dtype)
from r1_distill.errors import UserError, require
from r1_distill.files import carry_tokenizer_files, write_json_atomic, write_text_atomic
from r1_distill.manifest import file_digest, write_manifest
from r1_distill.registry import Recipe, Registry, load_registry, read_template
from r1_distill.traces import read_traces


@dataclass
class TrainConfig:
    student: str  # models.yaml student, hub id or HF folder
    traces: str  # kept.jsonl (or a folder of traces)
    out: str
    method: Optional[str] = None
    learning_rate: Optional[float] = None
    epochs: Optional[float] = None
    max_length: Optional[int] = None
    effective_batch: Optional[int] = None
    per_device_batch: Optional[int] = None
    resume: bool = False
    save_steps: float = 0.1  # below 1: a fraction of the run (a checkpoint of a 7B student is ~100 GB)
    save_minutes: Optional[float] = None  # also save when this long has passed since the last checkpoint
    logging_steps: Optional[int] = None  # default: about 100 points over the run
    group_by_length: bool = False  # batches of similar length: less padding, less mixed batches
    precision: Optional[str] = None  # bf16 | fp32; default: bf16 on a GPU, fp32 on a CPU
    gradient_checkpointing: Optional[bool] = None  # default: on a GPU
    seed: int = 0
    print_logs: bool = True  # False: the progress bar only; the logs still go to log_history.json
    models_file: Optional[str] = None
    dataset_num_proc: Optional[int] = None  # tokenizing processes; default: every core for large trace sets
    collective_timeout_minutes: float = COLLECTIVE_TIMEOUT_MINUTES  # how long a worker waits for the others
    # method "on-policy" (distill/onpolicy.py): the teacher scores the student's own samples
    teacher: Optional[str] = None
    lmbda: Optional[float] = None
    divergence: Optional[str] = None
    beta: Optional[float] = None
    temperature: Optional[float] = None
    max_new_tokens: Optional[int] = None
    trace_format: Optional[str] = None  # the traces' row shape (r1_distill.trace_formats); default: detected


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


def tokenized_dataset(records, tokenizer, max_length: int, *, num_proc: Optional[int] = None):
    """The rows TRL's SFTTrainer trains on as they are (input_ids; labels -100 outside the trained span), so
    TRL tokenizes nothing again; rows over max_length are dropped and counted. Tokenized on `num_proc` cores
    (default: all of them for large sets). Returns (dataset or None, dropped, lengths)."""
    from datasets import Dataset

    messages = Dataset.from_list([{"messages": to_messages(r)} for r in records])
    if num_proc is None and len(records) >= PARALLEL_TOKENIZE_FROM:
        num_proc = min(len(os.sched_getaffinity(0)), 32)
    encoded = messages.map(_tokenize_row, fn_kwargs={"tokenizer": tokenizer}, remove_columns=["messages"],
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


def training_dataset(config: "TrainConfig", records, tokenizer, base: str, max_length: int, out: Path, args):
    """`tokenized_dataset`, made once: the main process tokenizes and keeps it in OUT/checkpoints/tokenized while the others
    wait (under the training arguments' collective timeout), then they read it; a rerun or a resume reads it too.
    A worker that cannot see the main process's folder (no shared disk between nodes) tokenizes its own."""
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
        return load_from_disk(str(folder / "rows")) if found["rows"] else None, found["too_long"], found["lengths"]

    with args.main_process_first(local=False, desc="tokenizing traces"), dataset_bars(len(records) >= PARALLEL_TOKENIZE_FROM):
        if (found := saved()) is not None:
            return found
        dataset, too_long, lengths = tokenized_dataset(records, tokenizer, max_length, num_proc=args.dataset_num_proc)
        if args.process_index == 0:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            if dataset is not None:
                dataset.save_to_disk(str(folder / "rows"))
            write_json_atomic(stamp, {"key": key, "rows": dataset is not None, "too_long": too_long, "lengths": lengths})
        return dataset, too_long, lengths


def _plot_loss(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(h["step"], h["loss"]) for h in history if "loss" in h]
    if not points:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([p[0] for p in points], [p[1] for p in points], color="#4477aa")
    ax.set(title="Training loss", xlabel="step", ylabel="loss (assistant tokens)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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


def partitioned_at_load(model) -> Optional[dict]:
    """Whether ZeRO-3 partitioned the parameters as they loaded (zero.Init): the share this worker holds."""
    params = list(model.parameters())
    if not any(hasattr(p, "ds_id") for p in params):
        return None
    total = sum(p.ds_numel for p in params)
    held = sum(p.ds_tensor.numel() for p in params)
    return {"parameters": total, "held_by_main_process": held}


def train(config: TrainConfig) -> dict:
    import torch
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    if config.method == "on-policy":
        from r1_distill.distill.onpolicy import OnPolicyConfig, train_on_policy

        return train_on_policy(OnPolicyConfig.from_train(config))
    if config.teacher:
        raise UserError("--teacher goes with --method on-policy")
    launch = current_launch()
    student, base, recipe = resolve_student(config)
    registry = load_registry(config.models_file)
    method = config.method or recipe.method
    if method not in ("full", "lora", "qlora"):
        raise UserError(f"unknown method {method!r}: full, lora, qlora or on-policy")
    cuda = torch.cuda.is_available()
    refuse_launches_that_cannot_run("train", launch, cuda=cuda)
    max_length = config.max_length or recipe.max_length
    records = [r for r in read_traces(config.traces, format=config.trace_format) if r.kept is not False]
    if not records:
        raise UserError(f"no kept traces in {config.traces}: run r1-distill filter first")
    unfiltered = sum(r.kept is None for r in records)
    if unfiltered and launch.main:
        from rich.console import Console

        Console(stderr=True).print(f"[yellow]warning: {unfiltered} of {len(records)} traces in {config.traces} were "
                                   "never filtered (no verdicts): unverified traces teach wrong reasoning too; run "
                                   "`r1-distill filter` and train on its kept.jsonl[/yellow]")
    tokenizer, model_config, spec, plan = prepared_tokenizer(base, student, registry)
    tokenizer.chat_template = read_template(spec.train_template)

    precision = resolve_precision(config.precision, cuda)
    bf16 = precision == "bf16"
    checkpointing = trainer_checkpointing(config.gradient_checkpointing, cuda=cuda, launch=launch)
    # Padding-free batches need an attention kernel that keeps packed sequences apart (FlashAttention on GPU);
    # CPU's SDPA does not. There --group-by-length cuts most of the padding instead; it is off by default
    # because same-length batches are less mixed (on the demo's task it cost the teacher much accuracy).
    padding_free = cuda and _has("flash_attn")
    per_device = config.per_device_batch or recipe.per_device_batch
    effective = config.effective_batch or recipe.effective_batch
    accumulation = max(1, effective // (per_device * launch.world))
    out = Path(config.out)
    checkpoints = out / "checkpoints"
    epochs = config.epochs or recipe.epochs
    # The arguments come first: they make the process group (with their timeout) and, under ZeRO-3, the
    # DeepSpeed config that from_pretrained reads to load each worker's share only (zero.Init).
    sft = SFTConfig(
        output_dir=str(checkpoints), num_train_epochs=epochs,
        learning_rate=config.learning_rate or recipe.learning_rate, per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation, lr_scheduler_type=recipe.lr_scheduler, warmup_steps=recipe.warmup_ratio,
        weight_decay=recipe.weight_decay, max_length=None, assistant_only_loss=False,
        dataset_kwargs={"skip_prepare_dataset": True},  # rows come tokenized, with their labels
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=2, bf16=bf16, use_cpu=not cuda,
        report_to="none", **checkpointing_arg(checkpointing), seed=config.seed, eos_token=tokenizer.eos_token,
        dataset_num_proc=config.dataset_num_proc, ddp_timeout=int(config.collective_timeout_minutes * 60),
        padding_free=padding_free,
        use_liger_kernel=cuda and _has("liger_kernel"),
        train_sampling_strategy="group_by_length" if config.group_by_length and not padding_free else "random",
    )
    dataset, too_long, lengths = training_dataset(config, records, tokenizer, base, max_length, out, sft)
    if dataset is None:
        raise UserError(f"all {too_long} traces are longer than --max-length {max_length} tokens and were dropped: "
                        "raise --max-length (and the long-context settings) or filter with --max-tokens")
    total_steps = math.ceil(math.ceil(len(dataset) / (per_device * launch.world)) / accumulation * epochs)
    sft.logging_steps = config.logging_steps or max(1, total_steps // 100)

    model_kwargs: dict = {"dtype": weights_dtype(precision, full=method == "full", launch=launch)}
    if student is not None and student.long_context and max_length > student.native_context:
        model_config.max_position_embeddings = student.long_context.max_position_embeddings
        rope = dict(getattr(model_config, "rope_parameters", None) or {"rope_type": "default"})
        rope["rope_theta"] = student.long_context.rope_theta
        model_config.rope_parameters = rope
    peft_config = None
    quantization = None
    if method == "qlora":
        # bitsandbytes >= 0.49 runs 4-bit on CPU too (slowly): fine for trying the path, the real thing is a GPU
        require("bitsandbytes", "gpu", "QLoRA")
        model_kwargs.update(quantization_kwargs(launch, bf16=bf16, cuda=cuda))
        quantization = f"bitsandbytes nf4 ({'cuda' if cuda else 'cpu'})"
    if padding_free:
        model_kwargs["attn_implementation"] = "flash_attention_2"
    model = AutoModelForCausalLM.from_pretrained(base, config=model_config, **model_kwargs)
    zero3_load = partitioned_at_load(model)
    prepare_model(model, plan, tokenizer)
    if method in ("lora", "qlora"):
        peft_config = lora_config(model, plan, r=recipe.lora_r, alpha=recipe.lora_alpha, dropout=recipe.lora_dropout)

    callbacks = [SaveEveryMinutes(config.save_minutes)] if config.save_minutes else None
    trainer = SFTTrainer(model=model, args=sft, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config,
                         callbacks=callbacks)
    result, resume_from = run_trainer(trainer, checkpoints, resume=config.resume, print_logs=config.print_logs)

    tokenizer.chat_template = read_template(spec.template)

    def load_base():
        fresh = AutoModelForCausalLM.from_pretrained(base, config=model_config, dtype="auto")
        prepare_model(fresh, plan, tokenizer)
        return fresh

    save_trained_model(trainer, tokenizer, out, source=base, load_base=load_base if peft_config else None,
                       save_dtype=torch.bfloat16 if bf16 else None)
    if not trainer.is_world_process_zero():
        return {}
    r1_generation_config(tokenizer).save_pretrained(out)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    metrics = {"traces": len(records), "trained_on": len(dataset), "dropped_too_long": too_long,
               "mean_tokens": sum(lengths) / len(lengths), "first_loss": losses[0] if losses else None,
               "final_loss": losses[-1] if losses else None, "steps": trainer.state.global_step,
               "train_runtime_s": result.metrics.get("train_runtime"), "resumed": resume_from is not None,
               "resumed_from_step": int(resume_from.name.split("-")[-1]) if resume_from else None,
               "quantization": quantization, "processes": launch.world, "distributed": engine_of(trainer, launch),
               "precision": precision, "weights_dtype": str(model_kwargs["dtype"]).removeprefix("torch."),
               "padding_free": padding_free, "zero3_partitioned_at_load": zero3_load,
               "gradient_checkpointing": checkpointing, "chat_format": plan.as_dict()}
    _plot_loss(trainer.state.log_history, out / "loss.png")
    (out / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    write_manifest(out, "train", config=config, inputs={"base": base, "traces": config.traces,
                                                        "traces_digest": file_digest(config.traces)},
                   outputs={"model": ".", "adapter": "adapter" if peft_config else None}, metrics=metrics)
    write_text_atomic(out / "README.md", _model_card(config, base, method, metrics))
    return metrics


def lora_config(model, plan: Optional[FormatPlan], *, r: int, alpha: int, dropout: float = 0.0):
    """LoRA on every linear layer; where the chat format renamed or added tokens, the embeddings train too."""
    from peft import LoraConfig

    save = embedding_modules(model) if plan and plan.changed_ids else None
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules="all-linear", task_type="CAUSAL_LM",
                      modules_to_save=save, ensure_weight_tying=bool(save) and model.config.tie_word_embeddings)


def resume_checkpoint(trainer, checkpoints: Path) -> Optional[Path]:
    """The last complete checkpoint; the main process removes a half-written one while the others wait."""
    if trainer.is_world_process_zero():
        found = last_complete_checkpoint(checkpoints)
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        found = last_complete_checkpoint(checkpoints, remove=False)
    return found


def save_trained_model(trainer, tokenizer, out: Path, *, source: str, load_base=None, save_dtype=None) -> None:
    """The HF folder a training stage leaves: the merged model, the tokenizer, the files save_pretrained
    drops (tokenizer.model for llama.cpp's converter), and with LoRA the adapter in adapter/.

    Every process calls this: saving goes through the trainer, which gathers sharded weights (ZeRO-3 with
    stage3_gather_16bit_weights_on_model_save, FSDP's full state dict) and writes on the main process only.
    A LoRA adapter is merged on the main process into a fresh copy of the base (`load_base`), never into
    sharded or 4-bit weights, and outside ZeRO-3 (`outside_zero3`): that load is the main process's alone.
    `save_dtype`: the dtype a full model trained on fp32 master weights (one process or DDP) is saved in."""
    if save_dtype is not None and not load_base and not (trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled):
        trainer.accelerator.unwrap_model(trainer.model).to(save_dtype)
    if trainer.is_fsdp_enabled:
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer_saves_tokenizer = not load_base and not trainer.is_fsdp_enabled  # save_model writes it beside the model
    if trainer.is_fsdp_enabled and not load_base:
        _save_fsdp_full_model(trainer, out)
    else:
        trainer.save_model(str(out / "adapter") if load_base else str(out))
    if trainer.is_world_process_zero():
        if load_base:
            from peft import PeftModel

            with outside_zero3():
                merged = PeftModel.from_pretrained(load_base(), str(out / "adapter")).merge_and_unload()
            merged.save_pretrained(out)
        if not trainer_saves_tokenizer:
            tokenizer.save_pretrained(out)
        carry_tokenizer_files(source, out)
    trainer.accelerator.wait_for_everyone()


def _save_fsdp_full_model(trainer, out: Path) -> None:
    """FSDP2 trains fp32 copies of the weights (accelerate upcasts them): the saved model goes back to the
    dtype the model was loaded in, not twice its size."""
    state = trainer.accelerator.get_state_dict(trainer.model)  # a collective: every worker calls it
    if not trainer.is_world_process_zero():
        return
    model = trainer.accelerator.unwrap_model(trainer.model)
    dtype = getattr(model.config, "dtype", None)
    if dtype is not None and not isinstance(dtype, str):
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    model.save_pretrained(str(out), state_dict=state, safe_serialization=True)


@contextmanager
def outside_zero3():
    """from_pretrained as in one process while a ZeRO-3 run's config is alive: no zero.Init, whose per-parameter
    collectives the other workers (waiting at a barrier) would never join, and which would leave this worker
    holding only its shards."""
    from transformers.integrations import deepspeed as hf_deepspeed

    held = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = held


def run_trainer(trainer, checkpoints: Path, *, resume: bool, print_logs: bool):
    """Train, from the last complete checkpoint with `resume`; the progress bar alone without `print_logs`.
    Returns TRL's train output and the checkpoint resumed from (or None)."""
    if not print_logs:
        keep_bar_only(trainer)
    resume_from = resume_checkpoint(trainer, checkpoints) if resume else None
    return trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None), resume_from


def r1_generation_config(tokenizer):
    """generation_config.json with R1's recommended sampling (temperature 0.6, top-p 0.95) and the prepared ids."""
    from transformers import GenerationConfig

    return GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id, do_sample=True, temperature=0.6, top_p=0.95)


def checkpointing_arg(enabled: bool) -> dict:
    """The training arguments' activation checkpointing under its current name (transformers 5.2x
    renamed `gradient_checkpointing`; TRL's configs still default the old name to True)."""
    from dataclasses import fields

    from transformers import TrainingArguments

    names = {f.name for f in fields(TrainingArguments)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": enabled}


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
