"""Which checkpoint a `--resume` continues from.

A run killed while saving leaves a `checkpoint-N` folder without its `trainer_state.json`, which the
Trainer writes last; resuming from it fails. The last complete one is the place to continue."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console


def last_complete_checkpoint(checkpoints: Path) -> Path | None:
    """The newest checkpoint with its trainer state; newer, half-written ones are removed (nothing in them
    can be resumed, and the Trainer would otherwise pick them)."""
    saved = sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for path in saved:
        if (path / "trainer_state.json").is_file():
            return path
        Console(stderr=True).print(f"[yellow]{path.name} was not finished (the run stopped while saving it): "
                                   "removed; resuming from the one before[/yellow]")
        shutil.rmtree(path)
    return None
