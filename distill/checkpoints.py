"""Which checkpoint a `--resume` continues from.

A run killed while saving leaves a `checkpoint-N` folder without its `trainer_state.json`, which the
Trainer writes last; resuming from it fails. The last complete one is the place to continue."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.console import Console
from transformers import TrainerCallback


def last_complete_checkpoint(checkpoints: Path, *, remove: bool = True) -> Path | None:
    """The newest checkpoint with its trainer state; newer, half-written ones are removed (nothing in them
    can be resumed, and the Trainer would otherwise pick them)."""
    saved = sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for path in saved:
        if (path / "trainer_state.json").is_file():
            return path
        if not remove:
            continue
        Console(stderr=True).print(f"[yellow]{path.name} was not finished (the run stopped while saving it): "
                                   "removed; resuming from the one before[/yellow]")
        shutil.rmtree(path)
    return None


class SaveEveryMinutes(TrainerCallback):
    """Also save when `minutes` have passed since the last checkpoint (long runs on few, slow steps).

    Saving is collective under ZeRO-3 and FSDP (the weights are gathered), so every worker must save at the same
    step: the main process reads its clock and the others take its decision (a broadcast each step, a few bytes)."""

    def __init__(self, minutes: float):
        self.seconds, self.last = minutes * 60, time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        due = time.monotonic() - self.last >= self.seconds
        if args.world_size > 1:
            from accelerate.utils import broadcast_object_list

            decision = [due]
            broadcast_object_list(decision, from_process=0)
            due = decision[0]
        if due:
            control.should_save = True
        return control

    def on_save(self, args, state, control, **kwargs):
        self.last = time.monotonic()
