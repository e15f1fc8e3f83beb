"""How a training stage was launched, and what follows from it for loading and saving the model.

`accelerate launch` tells its workers what it started through the environment (RANK, WORLD_SIZE,
ACCELERATE_USE_DEEPSPEED, ACCELERATE_USE_FSDP, ...), before torch.distributed exists. Reading it
there, rather than through `PartialState()`, keeps the process group unmade until the training
arguments make it with their own timeout (`ddp_timeout`), and lets the arguments come first, as
DeepSpeed's zero.Init needs them to (the config must exist when `from_pretrained` runs)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from r1_distill.errors import UserError

# Collectives wait this long by default (torch's own default is 10 minutes, too short for a rank-0 merge
# of a 70B adapter or a 64 GB 16-bit checkpoint while the others wait at the next collective).
COLLECTIVE_TIMEOUT_MINUTES = 180.0


@dataclass(frozen=True)
class Launch:
    world: int
    rank: int
    local_rank: int
    backend: str  # single | ddp | deepspeed | fsdp

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        """Parameters split over the workers (ZeRO-3 or FSDP): each worker holds a part."""
        return self.backend in ("deepspeed", "fsdp")


def current_launch() -> Launch:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if _flag("ACCELERATE_USE_DEEPSPEED"):
        backend = "deepspeed"
    elif _flag("ACCELERATE_USE_FSDP"):
        backend = "fsdp"
    else:
        backend = "ddp" if world > 1 else "single"
    return Launch(world=world, rank=int(os.environ.get("RANK", "0")), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                  backend=backend)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def weights_dtype(precision: str, *, full: bool, launch: Launch):
    """The dtype the trained weights are loaded in.

    bf16 training keeps fp32 master weights: DeepSpeed keeps its own fp32 copy, and accelerate upcasts
    FSDP2's trainable parameters; in one process or DDP nothing does, so a full fine-tune loads fp32 weights
    and computes in bf16 under autocast (updates of lr 1e-6 round to nothing in bf16 weights). Frozen
    weights (LoRA's base) stay bf16."""
    import torch

    if precision != "bf16":
        return torch.float32
    if full and not launch.sharded:
        return torch.float32
    return torch.bfloat16


def resolve_precision(given, cuda: bool) -> str:
    """bf16 | fp32: the one asked for, else bf16 on a GPU and fp32 on a CPU."""
    precision = given or ("bf16" if cuda else "fp32")
    if precision not in ("bf16", "fp32"):
        raise UserError(f"unknown precision {precision!r}: bf16 or fp32")
    return precision


def trainer_checkpointing(wanted, *, cuda: bool, launch: Launch) -> bool:
    """Whether the Trainer checkpoints activations: as asked, else on a GPU; never under FSDP, which checkpoints
    each layer itself (fsdp_activation_checkpointing) and may not do it twice over."""
    if launch.backend == "fsdp":
        return False
    return cuda if wanted is None else wanted


def refuse_launches_that_cannot_run(command: str, launch: Launch, *, cuda: bool) -> None:
    """Before anything loads: an FSDP launch on a CPU, and one process on several GPUs."""
    _refuse_fsdp_without_gpus(launch, cuda=cuda)
    _refuse_one_process_on_many_gpus(command)


def _refuse_fsdp_without_gpus(launch: Launch, *, cuda: bool) -> None:
    """accelerate turns FSDP on only for GPU-type launches: under `use_cpu` (or on a machine without GPUs) it sets
    up plain CPU data parallelism and the run would train unsharded while its config says FSDP. Say so instead."""
    if launch.backend == "fsdp" and not cuda:
        raise UserError("accelerate runs FSDP only on GPUs: on a CPU this launch would train as plain data parallel, "
                        "unsharded; use distill/accelerate/zero3.yaml (DeepSpeed ZeRO-3 runs on CPU workers) or ddp.yaml")


def _refuse_one_process_on_many_gpus(command: str) -> None:
    """TRL's trainers refuse nn.DataParallel: one process started on a host with several visible GPUs stops in
    the trainer's constructor. Say what to run instead, before anything loads."""
    if "LOCAL_RANK" in os.environ or "WORLD_SIZE" in os.environ:
        return
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return
    n = torch.cuda.device_count()
    raise UserError(f"{n} GPUs are visible to one process, and TRL's trainers do not split one process over several: "
                    f"run `accelerate launch --config_file distill/accelerate/zero3.yaml --num_processes {n} "
                    f"-m r1_distill {command} ...` to use them all, or CUDA_VISIBLE_DEVICES=0 for one")


def engine_of(trainer, launch: Launch) -> str:
    """What the trainer itself ran on: deepspeed, fsdp, or the launch's ddp / single."""
    if trainer.is_deepspeed_enabled:
        return "deepspeed"
    if trainer.is_fsdp_enabled:
        return "fsdp"
    return "ddp" if launch.world > 1 else "single"
