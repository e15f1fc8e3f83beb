"""`r1-distill`: one subcommand per stage. A thin layer: each command parses its options and calls
the stage's function, which tests call directly. Errors a user can fix exit with code 2 and one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import UserError
from .registry import load_registry

app = typer.Typer(
    name="r1-distill",
    help="Distill a reasoning teacher into small local reasoning models: "
    "generate -> filter -> train [-> grpo] -> eval -> export -> serve / chat.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
console = Console(width=None if sys.stdout.isatty() else 200)


def print_error(message: str) -> None:
    """One plain line on stderr (never wrapped), for scripts and people alike."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


class State:
    models_file: Optional[Path] = None

    @property
    def registry(self):
        return load_registry(self.models_file)


state = State()


@app.callback()
def _global(
    models: Optional[Path] = typer.Option(
        None, "--models", envvar="R1_DISTILL_MODELS", help="Model registry file (default: the shipped models.yaml)."
    ),
):
    state.models_file = models
    load_registry(models)  # a bad registry fails every command up front, with its key named


def _not_built(stage: str, issue: int) -> None:
    print_error(f"`r1-distill {stage}` is not built yet (tracked in issue {issue}).")
    raise typer.Exit(2)


@app.command("models")
def models_cmd(as_json: bool = typer.Option(False, "--json", help="Print the registry as JSON.")):
    """List the teachers, the student bases with their recipes, and the export presets."""
    reg = state.registry
    if as_json:
        console.print_json(json.dumps(reg.model_dump(mode="json")))
        return
    table = Table(title=f"Students ({reg.source})")
    for col in ("name", "base", "arch", "params", "context", "method", "lr", "epochs", "max len", "batch", "GPUs"):
        table.add_column(col)
    for name, s in reg.students.items():
        r = s.recipe
        context = f"{s.native_context}"
        if s.long_context:
            context += f" -> {s.long_context.max_position_embeddings} (rope {s.long_context.rope_theta:g})"
        gpus = "CPU" if r.gpus.count == 0 else f"{r.gpus.count} x {r.gpus.memory_gb_each} GB"
        table.add_row(name, s.base, s.architecture, f"{s.params_b:g}B", context, r.method,
                      f"{r.learning_rate:g}", f"{r.epochs:g}", str(r.max_length), str(r.effective_batch), gpus)
    console.print(table)
    teachers = Table(title="Teachers")
    for col in ("name", "kind", "model", "endpoint / parallelism"):
        teachers.add_column(col)
    for name, t in reg.teachers.items():
        where = t.base_url if t.kind == "openai" else f"tp={t.tensor_parallel_size} dp={t.data_parallel_size}"
        teachers.add_row(name, t.kind, t.model or "", where or "")
    console.print(teachers)
    s = reg.defaults.sampling
    console.print(f"Sampling defaults: temperature {s.temperature}, top-p {s.top_p}, up to {s.max_new_tokens} new "
                  f"tokens, {s.samples} samples, suffix {s.prompt_suffix!r}")
    console.print("Export presets: " + "; ".join(f"{n}: {', '.join(p.quants)}" for n, p in reg.export_presets.items()))


_PENDING = {"generate": 3, "filter": 3, "train": 4, "grpo": 4, "eval": 4, "export": 5, "serve": 6, "chat": 7, "demo": 8}


def _register_pending(stage: str, issue: int) -> None:
    @app.command(stage, context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
                 help=f"(not built yet: issue {issue})")
    def _cmd(ctx: typer.Context):
        _not_built(stage, issue)


for _stage, _issue in _PENDING.items():
    _register_pending(_stage, _issue)


def main(argv: list[str] | None = None) -> int:
    try:
        app(args=argv, prog_name="r1-distill")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except UserError as exc:
        print_error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
