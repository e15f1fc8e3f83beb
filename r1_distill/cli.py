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
from .options import add_command
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
    if reg.benchmarks:
        benches = Table(title="Benchmarks (eval --bench NAME,...)")
        for col in ("name", "dataset", "grader", "samples", "prompt"):
            benches.add_column(col)
        for name, b in reg.benchmarks.items():
            benches.add_row(name, b.dataset + (f" ({b.subset})" if b.subset else ""), b.format, str(b.samples), b.prompt)
        console.print(benches)


def _program_fields() -> dict:
    return {"models_file": str(state.models_file) if state.models_file else None}


def _print_export(report: dict, out: Path) -> None:
    table = Table(title=f"GGUF export of {report['model']} -> {out}")
    for col in ("file", "size", "tokens same", "max |dlogit|", "top-1 agree", "mean KL", "greedy match"):
        table.add_column(col)
    for f in report["files"].values():
        table.add_row(f["path"], f"{f['bytes'] / 2**20:.1f} MiB", str(f["tokenization_identical"]),
                      f"{f['max_abs_logit_diff']:.2e}", f"{f['top1_agreement']:.3f}", f"{f['mean_kl']:.2e}",
                      f"{f['greedy_match']:.2f}")
    console.print(table)
    default = report["files"].get("Q4_K_M", next(iter(report["files"].values())))
    console.print(f"Report: {out / 'export_report.json'}; Ollama: {out / 'Modelfile'}")
    draft = f" --draft {report['draft']}" if report.get("draft") else ""
    console.print(f"Serve it: r1-distill serve --model {out / default['path']}{draft}")


def _export_run(config):
    """Merge an adapter, convert with llama.cpp's converter, quantize, and verify every file."""
    from r1_distill.export.pipeline import export_gguf

    if not config.gguf:
        raise UserError("pass --gguf: GGUF is the export format (r1-distill export --gguf --model DIR --out DIR)")
    _print_export(export_gguf(config), Path(config.out))


def _serve_run(config):
    """OpenAI-compatible server with the thinking returned apart (reasoning_content)."""
    from r1_distill.serve import serve

    console.print(f"Serving {config.model} on http://{config.host}:{config.port}/v1 ({config.parallel} slots x "
                  f"{config.ctx} tokens)")
    serve(config)


def _generate_run(config):
    """Sample k traces per prompt from a teacher (resumable: rerun to finish)."""
    from dataclasses import replace

    from r1_distill.teacher.generate import generate

    summary = generate(replace(config, show_progress=sys.stderr.isatty()))
    console.print(f"{summary['generated']} new traces ({summary['already_done']} already done) of "
                  f"{summary['total']} in {config.out}")


def _filter_run(config):
    """Verify traces (answer, format, language, repetition, length, duplicates, contamination) and keep the
    good."""
    from r1_distill.teacher.filter import filter_traces

    report = filter_traces(config)
    out = Path(config.out)
    console.print(f"kept {report['kept']} of {report['input']} traces ({report['prompts_with_a_kept_trace']} of "
                  f"{report['prompts']} prompts); dropped by first reason: {report['dropped_by_first_reason']}")
    console.print(f"report: {out / 'report.json'}, {out / 'report.png'}")


def _chat_run(options):
    """Chat app (Gradio) with the thinking shown apart from the answer."""
    from r1_distill.ui.app import launch

    launch(options.chat_config())


def _train_run(config):
    """Fine-tune a student on kept traces (TRL SFTTrainer; loss on the reasoning and answer only), or with
    --method on-policy --teacher: the student samples, the teacher scores every token (TRL GKD / server
    distillation)."""
    from r1_distill.distill.train import train

    metrics = train(config)
    if not metrics:  # not the main process of a multi-process run: it reports
        return
    if config.method == "on-policy":
        c = metrics["compute"]
        console.print(f"on-policy distilled on {metrics['prompts']} prompts ({metrics['divergence']}, "
                      f"{metrics['steps']} steps), divergence {metrics['first_loss']} -> {metrics['final_loss']}; "
                      f"{c['teacher_forward_passes']} teacher forward passes, {c['student_sampled_tokens']} student "
                      f"tokens sampled; model in {config.out}")
        return
    console.print(f"trained on {metrics['trained_on']} traces ({metrics['dropped_too_long']} dropped as too long), "
                  f"loss {metrics['first_loss']} -> {metrics['final_loss']}; model in {config.out}")


def _grpo_run(config):
    """Reinforce a model with GRPO (TRL) and the rule-based rewards of r1_distill.grading."""
    from r1_distill.distill.grpo import grpo

    metrics = grpo(config)
    if not metrics:  # not the main process of a multi-process run: it reports
        return
    for name, r in metrics["rewards"].items():
        console.print(f"{name}: {r['first_quarter']:.3f} (first quarter of steps) -> {r['last_quarter']:.3f} "
                      "(last quarter)")
    console.print(f"{metrics['steps']} steps; model in {config.out}; reward curves in "
                  f"{Path(config.out) / 'rewards.png'}")


def _eval_run(config):
    """pass@1 over K samples and cons@K (majority vote), graded by filter's correctness check."""
    from r1_distill.distill.evaluate import evaluate, format_table

    console.print(format_table(evaluate(config)))
    console.print(f"per problem: {Path(config.out) / 'results.jsonl'}; summary: {Path(config.out) / 'summary.json'}")


def _demo_run(options):
    """The whole R1 recipe on a toy task, offline on a CPU: cold-start SFT and GRPO of a teacher, sampling
    through the local server, filtering, distillation into a smaller student (and an unfiltered control),
    evaluation, GGUF."""
    from r1_distill.demo.pipeline import run_demo

    config = options.demo_config()
    if options.seeds is not None:
        from r1_distill.demo.seeds import parse_seeds, run_seeds

        def run_one(seed_config):
            console.print(f"[bold]seed {seed_config.seed}: {seed_config.out}[/bold]")
            report = run_demo(seed_config, redo=options.redo)
            _print_demo(report, Path(seed_config.out))
            return report

        _print_seeds(run_seeds(config, parse_seeds(options.seeds), run_one), Path(config.out))
        return
    _print_demo(run_demo(config, redo=options.redo), Path(config.out))


def _print_seeds(report: dict, out: Path) -> None:
    seeds = [str(s) for s in report["seeds"]]
    table = Table(title=f"pass@1 over seeds {', '.join(seeds)} ({report['heldout_problems']} held-out problems, "
                        f"K={report['samples_per_problem']})")
    for column in ("model", *(f"seed {s}" for s in seeds), "mean +- s.e."):
        table.add_column(column)
    for a in report["accuracy"].values():
        spread = f"{a['mean']:.1%}" + (f" +- {a['stderr']:.1%}" if a["stderr"] is not None else "")
        table.add_row(a["label"], *(f"{a['pass@1'][s]:.1%}" for s in seeds), spread)
    console.print(table)
    for name, arm in report["arms"].items():
        console.print(f"  {arm['label']}: teacher tokens {arm['teacher_tokens_mean']:,} in all, "
                      f"{arm['teacher_tokens_added_mean']:,} added to the cold start's (means), "
                      f"student tokens sampled {arm['student_tokens_sampled_mean']:,} (mean)")
    console.print("findings over the seeds:")
    for name, f in report["findings"].items():
        pooled = ""
        if "pooled_holds" in f:
            pooled = (f"; pooled {'holds' if f['pooled_holds'] else 'does not hold'} ({f['difference']}: "
                      f"{f['difference_mean']:+.1%} +- {f['difference_stderr'] or 0:.1%})")
        console.print(f"  {name}: holds on {f['holds_on']}{pooled}", soft_wrap=True)
    failed = {s: c for s, c in report["failed_checks"].items() if c}
    console.print("every check passed on every seed" if not failed else f"failed checks: {failed}")
    console.print(f"report: {out / 'report.json'}, {out / 'report.png'}")


def _register_stage_commands() -> None:
    from r1_distill.demo.pipeline import DemoOptions
    from r1_distill.distill.evaluate import EvalConfig
    from r1_distill.distill.grpo import GRPORunConfig
    from r1_distill.distill.train import TrainConfig
    from r1_distill.export.pipeline import ExportConfig
    from r1_distill.serve.config import ServerConfig
    from r1_distill.teacher.filter import FilterConfig
    from r1_distill.teacher.generate import GenerateConfig
    from r1_distill.ui.options import ChatOptions

    for name, config_cls, run in [("export", ExportConfig, _export_run), ("serve", ServerConfig, _serve_run),
                                  ("generate", GenerateConfig, _generate_run), ("filter", FilterConfig, _filter_run),
                                  ("chat", ChatOptions, _chat_run), ("train", TrainConfig, _train_run),
                                  ("grpo", GRPORunConfig, _grpo_run), ("eval", EvalConfig, _eval_run),
                                  ("demo", DemoOptions, _demo_run)]:
        add_command(app, name, config_cls, run, help=run.__doc__, program_fields=_program_fields)


def _print_demo(report: dict, out: Path) -> None:
    table = Table(title=f"held-out accuracy, {report['heldout_problems']} problems, K={report['samples_per_problem']}")
    for column in ("model", "pass@1", f"cons@{report['samples_per_problem']}"):
        table.add_column(column)
    for a in report["accuracy"].values():
        table.add_row(a["label"], f"{a['pass@1']:.1%}", f"{a['cons@K']:.1%}")
    console.print(table)
    funnel = report["filter_funnel"]
    console.print(f"filter: kept {funnel['kept']} of {funnel['generated']} teacher traces; "
                  f"dropped first by {funnel['dropped_by_first_reason']}")
    for name, c in report["compute"].items():
        console.print(f"compute, {report['accuracy'][name]['label']}: teacher {c['teacher_tokens']:,} tokens "
                      f"({c['teacher_sequences']:,} sequences), student trained on {c['student_tokens_trained']:,} "
                      f"and sampled {c['student_tokens_sampled']:,} tokens")
    for name, ok in report["checks"].items():
        console.print(f"  {'[green]PASS[/green]' if ok else '[red]FAIL[/red]'} {name}")
    # the literature's claims, measured: findings with their numbers, whichever way they go (not checks)
    console.print("findings (the literature's claims, measured here):")
    for name, f in report.get("findings", {}).items():
        numbers = "; ".join(f"{arm} pass@1 {f[arm]['pass@1']:.1%} +- {f[arm]['pass@1_stderr'] or 0:.1%}, teacher tokens "
                            f"added {f[arm]['teacher_tokens_added']:,}" for arm in ("opd", "continued_sft", "grpo") if arm in f)
        if "onpolicy_pass@1" in f:
            numbers = f"on-policy {f['onpolicy_pass@1']:.1%} vs SFT {f['sft_pass@1']:.1%} (documented negative result)"
        console.print(f"  {'holds' if f['holds'] else 'does not hold'}: {name} ({numbers})", soft_wrap=True)
    console.print(f"{report['total_seconds']:.0f} s of stage time; report: {out / 'report.json'}, {out / 'report.png'}")
    console.print("Chat with the distilled student:")
    console.print(f"  {report['chat_command']}", soft_wrap=True)


_register_stage_commands()


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
