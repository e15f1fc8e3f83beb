"""Progress display for multi-step jobs: one bar over the steps, the current step named."""

from __future__ import annotations

import contextlib
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


class StepProgress:
    def __init__(self, steps: list[str], title: str, *, console: Console | None = None):
        self.steps = steps
        self.title = title
        self.console = console or Console(stderr=True)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                                 console=self.console, transient=False, disable=not sys.stderr.isatty())

    def __enter__(self):
        self.progress.__enter__()
        self.task = self.progress.add_task(self.title, total=len(self.steps))
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    @contextlib.contextmanager
    def step(self, name: str):
        self.progress.update(self.task, description=f"{self.title}: {name}")
        start = time.perf_counter()
        yield
        self.progress.advance(self.task)
        if not sys.stderr.isatty():  # logs get one line per step instead of a redrawn bar
            print(f"[{self.title}] {name} done in {time.perf_counter() - start:.1f}s", file=sys.stderr, flush=True)


@contextlib.contextmanager
def count_progress(title: str, total: int, *, console: Console | None = None):
    """A bar over `total` items where stderr is a terminal (nothing drawn otherwise); yields `advance(n)`."""
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                        TimeElapsedColumn(), console=console or Console(stderr=True), transient=False,
                        disable=not sys.stderr.isatty())
    with progress:
        task = progress.add_task(title, total=total)
        yield lambda n=1: progress.advance(task, n)
