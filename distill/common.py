"""The training skeleton SFT (train.py), on-policy distillation (onpolicy.py) and GRPO (grpo.py) share: the
batch plan, the training arguments every stage sets alike, resuming, saving the model (merged, gathered from
ZeRO-3 or FSDP), and the record a run leaves (log history, plot, manifest, model card). A fix here lands in
all three."""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from r1_distill.chat_format import FormatPlan, embedding_modules
from r1_distill.distill.console import keep_bar_only
from r1_distill.files import carry_tokenizer_files, write_text_atomic
from r1_distill.manifest import write_manifest


@dataclass(frozen=True)
class BatchPlan:
    """Sequences per device and accumulation steps for an effective batch over `world` processes."""

    per_device: int
    accumulation: int
    world: int

    @classmethod
    def of(cls, *, effective: int, per_device: int, world: int) -> "BatchPlan":
        return cls(per_device, max(1, effective // (per_device * world)), world)

    @property
    def sequences_per_step(self) -> int:
        return self.per_device * self.accumulation * self.world

    def steps(self, rows: int, epochs: float) -> int:
        return math.ceil(math.ceil(rows / (self.per_device * self.world)) / self.accumulation * epochs)

    def logging_steps(self, rows: int, epochs: float, given: Optional[int] = None) -> int:
        """`given`, else about 100 points over the run."""
        return given or max(1, self.steps(rows, epochs) // 100)


def shared_arguments(*, checkpoints: Path, bf16: bool, cuda: bool, seed: int, collective_timeout_minutes: float,
                     checkpointing: bool, save_steps: float) -> dict:
    """The training arguments every stage sets the same way (TRL's SFTConfig, GKDConfig, GOLDConfig, GRPOConfig...)."""
    return dict(output_dir=str(checkpoints), save_strategy="steps", save_steps=save_steps, save_total_limit=2,
                bf16=bf16, use_cpu=not cuda, report_to="none", seed=seed,
                ddp_timeout=int(collective_timeout_minutes * 60), **checkpointing_arg(checkpointing))


def run_metrics(trainer, result, resume_from: Optional[Path], launch) -> dict:
    """What every stage reports about its run: steps, time, resume, processes and engine, the loss ends."""
    from r1_distill.distill.distributed import engine_of

    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"steps": trainer.state.global_step, "train_runtime_s": result.metrics.get("train_runtime"),
            "resumed": resume_from is not None,
            "resumed_from_step": int(resume_from.name.split("-")[-1]) if resume_from else None,
            "processes": launch.world, "distributed": engine_of(trainer, launch),
            "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None}


def write_run_record(out: Path, stage: str, *, config, history: list[dict], inputs: dict, outputs: dict, metrics: dict,
                     card: str, plot: Callable[[list[dict], Path], None] = None, plot_name: str = "loss.png") -> None:
    """The files a finished run leaves beside its model: log_history.json, a plot, manifest.json, README.md."""
    write_text_atomic(out / "log_history.json", json.dumps(history, indent=1))
    (plot or plot_loss)(history, out / plot_name)
    write_manifest(out, stage, config=config, inputs=inputs, outputs=outputs, metrics=metrics)
    write_text_atomic(out / "README.md", card)


def partitioned_at_load(model) -> Optional[dict]:
    """Whether ZeRO-3 partitioned the parameters as they loaded (zero.Init): the share this worker holds."""
    params = list(model.parameters())
    if not any(hasattr(p, "ds_id") for p in params):
        return None
    total = sum(p.ds_numel for p in params)
    held = sum(p.ds_tensor.numel() for p in params)
    return {"parameters": total, "held_by_main_process": held}


def resume_checkpoint(trainer, checkpoints: Path) -> Optional[Path]:
    """The last complete checkpoint; the main process removes a half-written one while the others wait."""
    from r1_distill.distill.checkpoints import last_complete_checkpoint

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


def lora_config(model, plan: Optional[FormatPlan], *, r: int, alpha: int, dropout: float = 0.0):
    """LoRA on every linear layer; where the chat format renamed or added tokens, the embeddings train too."""
    from peft import LoraConfig

    save = embedding_modules(model) if plan and plan.changed_ids else None
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules="all-linear", task_type="CAUSAL_LM",
                      modules_to_save=save, ensure_weight_tying=bool(save) and model.config.tie_word_embeddings)


def plot_loss(history: list[dict], path: Path) -> None:
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
