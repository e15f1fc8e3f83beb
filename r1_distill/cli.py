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
SANDBOX_HELP = "Where code tests run: local (bubblewrap), piston:URL (a Piston server) or e2b (E2B_API_KEY)."
TRACE_FORMAT_HELP = ("The traces' row shape, e.g. openr1-math, openthoughts, am-deepseek-r1 (default: detected from the "
                     "columns; an unknown shape's error lists every format).")


def print_error(message: str) -> None:
    """One plain line on stderr (never wrapped), for scripts and people alike."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def _load_stage_config(ctx: typer.Context, param, path: Optional[Path]) -> Optional[Path]:
    """`--config FILE.yaml`: the file's keys (a stage's options, as the flag without its dashes or the config
    field, e.g. `max_length`, `learning_rate`) become the command's defaults, and flags given override them."""
    if path is None:
        return None
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read --config {path}: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(data, dict):
        raise UserError(f"--config {path} is not a mapping of option names to values")
    names = {}
    for option in ctx.command.params:
        if option.name == "config":
            continue
        names[option.name] = option.name
        for flag in [*option.opts, *option.secondary_opts]:
            names[flag.lstrip("-").replace("-", "_")] = option.name
    defaults = {}
    for key, value in data.items():
        name = names.get(str(key).replace("-", "_"))
        if name is None:
            known = ", ".join(sorted(names))
            raise UserError(f"--config {path}: {ctx.info_name} has no option {key!r} (it has: {known})")
        defaults[name] = ",".join(map(str, value)) if isinstance(value, list) and _takes_csv(ctx, name) else value
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return path


def _takes_csv(ctx: typer.Context, name: str) -> bool:
    """A comma-separated option (e.g. --rewards) given as a YAML list in a --config file."""
    option = next(o for o in ctx.command.params if o.name == name)
    return not getattr(option, "multiple", False) and getattr(option.type, "name", "") == "text"


def config_option():
    return typer.Option(None, "--config", metavar="FILE.yaml", is_eager=True, callback=_load_stage_config,
                        help="A recipe file of this command's options (flags given override it).")


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


@app.command("export")
def export_cmd(
    config: Optional[Path] = config_option(),
    model: str = typer.Option(..., "--model", help="HF model folder, hub id, or LoRA adapter folder."),
    out: Path = typer.Option(..., "--out", help="Output folder for <model>-<QUANT>.gguf files and the report."),
    gguf: bool = typer.Option(False, "--gguf", help="Export to GGUF (the one format so far)."),
    quant: Optional[str] = typer.Option(None, "--quant", help="Comma-separated: F16, BF16, Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0."),
    preset: Optional[str] = typer.Option(None, "--preset", help="An export preset of models.yaml instead of --quant."),
    base: Optional[str] = typer.Option(None, "--base", help="Base model of an adapter (default: the adapter's record)."),
    name: Optional[str] = typer.Option(None, "--name", help="File name stem (default: the model folder's name)."),
    imatrix: Optional[Path] = typer.Option(None, "--imatrix", help="Importance matrix file (needs llama-quantize on PATH)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for quantizing and verifying."),
    greedy_tokens: int = typer.Option(16, "--greedy-tokens", help="Greedy tokens compared per verification prompt."),
    f16_tolerance: float = typer.Option(1e-3, "--f16-tolerance",
                                        help="F16 parity: last-token logits within this x max(1, logit scale)."),
):
    """Merge an adapter, convert with llama.cpp's converter, quantize, and verify every file."""
    from r1_distill.export.pipeline import ExportConfig, export_gguf

    if not gguf:
        raise UserError("pass --gguf: GGUF is the export format (r1-distill export --gguf --model DIR --out DIR)")
    if quant and preset:
        raise UserError("pass --quant or --preset, not both")
    if preset:
        presets = state.registry.export_presets
        if preset not in presets:
            raise UserError(f"unknown export preset {preset!r}: known are {', '.join(presets)}")
        quants = list(presets[preset].quants)
    else:
        quants = (quant or "Q4_K_M").split(",")
    report = export_gguf(ExportConfig(
        model=model, out=str(out), quants=quants, base=base, name=name, imatrix=str(imatrix) if imatrix else None,
        threads=threads, greedy_tokens=greedy_tokens, f16_tolerance=f16_tolerance, models_file=str(state.models_file) if state.models_file else None,
    ))
    table = Table(title=f"GGUF export of {report['model']} -> {out}")
    for col in ("file", "size", "tokens same", "max |dlogit|", "top-1 agree", "mean KL", "greedy match"):
        table.add_column(col)
    for q, f in report["files"].items():
        table.add_row(f["path"], f"{f['bytes'] / 2**20:.1f} MiB", str(f["tokenization_identical"]),
                      f"{f['max_abs_logit_diff']:.2e}", f"{f['top1_agreement']:.3f}", f"{f['mean_kl']:.2e}",
                      f"{f['greedy_match']:.2f}")
    console.print(table)
    default = report["files"].get("Q4_K_M", next(iter(report["files"].values())))
    console.print(f"Report: {out / 'export_report.json'}; Ollama: {out / 'Modelfile'}")
    console.print(f"Serve it: r1-distill serve --model {out / default['path']}")


@app.command("serve")
def serve_cmd(
    config: Optional[Path] = config_option(),
    model: str = typer.Option(..., "--model", help="A .gguf file (from r1-distill export --gguf)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, "--port"),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="R1_DISTILL_API_KEY", help="Require 'Authorization: Bearer KEY'."),
    parallel: int = typer.Option(4, "--parallel", help="Sequences decoded together (slots)."),
    ctx: int = typer.Option(4096, "--ctx", help="Context tokens per slot."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: the machine's physical cores, as llama-server)."),
    max_queue: int = typer.Option(64, "--max-queue", help="Requests waiting for a slot before 503."),
    name: Optional[str] = typer.Option(None, "--name", help="Model id in the API (default: the file's stem)."),
    cors_origins: Optional[str] = typer.Option(None, "--cors-origins", envvar="R1_DISTILL_CORS_ORIGINS",
                                               help="Comma-separated origins allowed by CORS ('*' for any); off by default."),
):
    """OpenAI-compatible server with the thinking returned apart (reasoning_content)."""
    from r1_distill.serve.app import ServerConfig, serve

    console.print(f"Serving {model} on http://{host}:{port}/v1 ({parallel} slots x {ctx} tokens)")
    serve(ServerConfig(model=model, host=host, port=port, api_key=api_key, parallel=parallel, ctx=ctx, threads=threads,
                       max_queue=max_queue, model_name=name, cors_origins=_csv(cors_origins),
                       models_file=str(state.models_file) if state.models_file else None))


def _csv(value: Optional[str]) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


@app.command("generate")
def generate_cmd(
    config: Optional[Path] = config_option(),
    teacher: str = typer.Option(..., "--teacher", help="models.yaml teacher, endpoint URL, hub id / HF folder, or .gguf."),
    prompts: str = typer.Option(..., "--prompts", help="JSONL, Parquet or a datasets hub id."),
    out: Path = typer.Option(..., "--out", help="Folder for traces-*.jsonl shards (resumable)."),
    samples: Optional[int] = typer.Option(None, "--samples", help="Samples per prompt (default: models.yaml)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="openai | vllm | transformers | llamacpp."),
    model: Optional[str] = typer.Option(None, "--model", help="Served model name (openai backend)."),
    endpoints: Optional[str] = typer.Option(None, "--endpoints", help="More comma-separated endpoint URLs (scale-out)."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="Environment variable with the API key."),
    concurrency: int = typer.Option(64, "--concurrency", help="Requests in flight (openai) / sequences (llamacpp)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="New tokens per sample (default: models.yaml)."),
    temperature: Optional[float] = typer.Option(None, "--temperature"),
    top_p: Optional[float] = typer.Option(None, "--top-p"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    problem_field: str = typer.Option("problem", "--problem-field"),
    answer_field: str = typer.Option("answer", "--answer-field"),
    id_field: str = typer.Option("id", "--id-field"),
    split: str = typer.Option("train", "--split", help="Split of a hub dataset."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N prompts."),
    batch_size: int = typer.Option(8, "--batch-size", help="Sequences per generate call (transformers)."),
    ctx: int = typer.Option(4096, "--ctx", help="Context per sequence (llamacpp)."),
    tensor_parallel_size: Optional[int] = typer.Option(
        None, "--tensor-parallel-size", help="GPUs per vLLM engine (default: the teacher's models.yaml entry, else 1)."),
    data_parallel_size: Optional[int] = typer.Option(
        None, "--data-parallel-size",
        help="Engine processes (vllm, transformers), prompts sharded (default: the teacher's models.yaml entry, else 1)."),
):
    """Sample k traces per prompt from a teacher (resumable: rerun to finish)."""
    from r1_distill.teacher.generate import GenerateConfig, generate

    summary = generate(GenerateConfig(
        teacher=teacher, prompts=prompts, out=str(out), samples=samples, backend=backend, model=model,
        endpoints=_csv(endpoints), api_key_env=api_key_env, concurrency=concurrency, max_tokens=max_tokens,
        temperature=temperature, top_p=top_p, seed=seed, problem_field=problem_field, answer_field=answer_field,
        id_field=id_field, split=split, limit=limit, batch_size=batch_size, ctx=ctx,
        tensor_parallel_size=tensor_parallel_size, data_parallel_size=data_parallel_size, models_file=str(state.models_file) if state.models_file else None,
        show_progress=sys.stderr.isatty()))
    console.print(f"{summary['generated']} new traces ({summary['already_done']} already done) of "
                  f"{summary['total']} in {out}")


@app.command("filter")
def filter_cmd(
    config: Optional[Path] = config_option(),
    traces: Path = typer.Option(..., "--traces", help="Folder written by r1-distill generate (or a .jsonl/.parquet)."),
    out: Path = typer.Option(..., "--out", help="Folder for kept.jsonl, dropped.jsonl, report.json, report.png."),
    decontaminate: Optional[list[Path]] = typer.Option(None, "--decontaminate", help="Benchmark file(s) to decontaminate against."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="JSONL with id and answer."),
    keep_per_prompt: Optional[int] = typer.Option(None, "--keep-per-prompt", help="Keep at most M correct traces per prompt."),
    min_pass_rate: float = typer.Option(0.0, "--min-pass-rate"),
    max_pass_rate: float = typer.Option(1.0, "--max-pass-rate"),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Drop traces longer than this."),
    language: str = typer.Option("Latin", "--language", help="Expected script of the traces."),
    allow_code: bool = typer.Option(False, "--allow-code", help="Keep traces with code blocks."),
    check_arithmetic: bool = typer.Option(False, "--check-arithmetic",
                                          help="Drop traces with a wrong 'a op b = c' step, even when the answer is right."),
    judge: Optional[str] = typer.Option(None, "--judge", help="OpenAI-compatible URL of an LLM judge for unparsable answers."),
    judge_model: str = typer.Option("judge", "--judge-model"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Grading processes (default: every available core)."),
    sandbox: str = typer.Option("local", "--sandbox", metavar="SPEC",
                                help=SANDBOX_HELP),
    trace_format: Optional[str] = typer.Option(None, "--format", metavar="NAME", help=TRACE_FORMAT_HELP),
):
    """Verify traces (answer, format, language, repetition, length, duplicates, contamination) and keep the good."""
    from r1_distill.teacher.filter import FilterConfig, filter_traces

    report = filter_traces(FilterConfig(
        traces=str(traces), out=str(out), decontaminate=[str(p) for p in decontaminate or []],
        reference=str(reference) if reference else None, keep_per_prompt=keep_per_prompt, min_pass_rate=min_pass_rate,
        max_pass_rate=max_pass_rate, max_tokens=max_tokens, language=language, allow_code=allow_code,
        check_arithmetic=check_arithmetic, judge=judge,
        judge_model=judge_model, workers=workers, sandbox=sandbox, trace_format=trace_format))
    console.print(f"kept {report['kept']} of {report['input']} traces ({report['prompts_with_a_kept_trace']} of "
                  f"{report['prompts']} prompts); dropped by first reason: {report['dropped_by_first_reason']}")
    console.print(f"report: {out / 'report.json'}, {out / 'report.png'}")


@app.command("chat")
def chat_cmd(
    config: Optional[Path] = config_option(),
    model: Optional[list[str]] = typer.Option(None, "--model", metavar="FILE.gguf",
                                              help="A .gguf to serve in-process (repeat to offer several)."),
    endpoint: Optional[list[str]] = typer.Option(None, "--endpoint", metavar="URL",
                                                 help="An OpenAI-compatible base URL, http://host:port/v1 (repeatable)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address of the app."),
    port: int = typer.Option(7860, "--port"),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="Environment variable with the endpoint's key."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Do not open a browser."),
    share: bool = typer.Option(False, "--share", help="Create a public Gradio share link (off by default)."),
    auth: Optional[str] = typer.Option(None, "--auth", metavar="USER:PASSWORD|FILE", help="Ask for a login: USER:PASSWORD, or a file of USER:PASSWORD lines."),
    window: bool = typer.Option(False, "--window", help="Open in a desktop window (pywebview); the browser if none can open."),
    max_tokens: int = typer.Option(2048, "--max-tokens", help="Default max tokens per reply."),
    thinking_budget: int = typer.Option(0, "--thinking-budget", help="Default thinking budget in tokens (0: none)."),
):
    """Chat app (Gradio) with the thinking shown apart from the answer."""
    import os

    from r1_distill.ui.access import parse_auth
    from r1_distill.ui.app import ChatConfig, ChatSettings, launch

    if not model and not endpoint:
        raise UserError("pass --model FILE.gguf or --endpoint URL (an OpenAI-compatible server)")
    key = os.environ.get(api_key_env, "") if api_key_env else "none"
    if api_key_env and not key:
        raise UserError(f"${api_key_env} is not set")
    config = ChatConfig(endpoints=endpoint or [], models=model or [], host=host, port=port, share=share,
                        open_browser=not no_browser, window=window, auth=parse_auth(auth), api_key=key,
                        settings=ChatSettings(max_tokens=max_tokens, thinking_budget=thinking_budget))
    launch(config)


@app.command("train")
def train_cmd(
    config: Optional[Path] = config_option(),
    student: str = typer.Option(..., "--student", help="models.yaml student, hub id or HF folder."),
    traces: Path = typer.Option(..., "--traces", help="kept.jsonl from r1-distill filter (or a traces folder)."),
    out: Path = typer.Option(..., "--out", help="Output model folder."),
    method: Optional[str] = typer.Option(None, "--method", help="full | lora | qlora (default: the recipe)."),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Longer traces are dropped, not cut."),
    epochs: Optional[float] = typer.Option(None, "--epochs"),
    lr: Optional[float] = typer.Option(None, "--lr", "--learning-rate"),
    effective_batch: Optional[int] = typer.Option(None, "--effective-batch", help="Sequences per optimizer step."),
    per_device_batch: Optional[int] = typer.Option(None, "--per-device-batch"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in OUT/checkpoints."),
    save_steps: float = typer.Option(0.1, "--save-steps", help="Checkpoint every N steps; below 1, a fraction of the run."),
    save_minutes: Optional[float] = typer.Option(None, "--save-minutes", help="Also checkpoint every N minutes."),
    group_by_length: bool = typer.Option(False, "--group-by-length", help="Batches of similar length (less padding on CPU)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="bf16 | fp32 (default: bf16 on a GPU, fp32 on a CPU)."),
    gradient_checkpointing: Optional[bool] = typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing",
                                                          help="Default: on a GPU."),
    teacher: Optional[str] = typer.Option(None, "--teacher", help="on-policy: the teacher (models.yaml teacher, hub id, "
                                          "HF folder; another tokenizer trains with TRL's GOLD, or URL of an OpenAI-compatible server)."),
    lmbda: Optional[float] = typer.Option(None, "--lmbda", help="on-policy: share of steps on the student's own samples "
                                          "(GKD's lambda; the rest on the traces' completions). Default 1."),
    divergence: Optional[str] = typer.Option(None, "--divergence", help="on-policy: forward | reverse | jsd (default reverse)."),
    beta: Optional[float] = typer.Option(None, "--beta", help="on-policy: JSD interpolation, 0 forward KL .. 1 reverse KL."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="on-policy: the student's sampling temperature (default 1)."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", help="on-policy: tokens the student samples per prompt."),
    dataset_num_proc: Optional[int] = typer.Option(None, "--dataset-num-proc", help="Tokenizing processes (default: every core for 5,000+ traces)."),
    collective_timeout: float = typer.Option(180.0, "--collective-timeout", help="Minutes a worker waits for the others (merges, big checkpoints)."),
    trace_format: Optional[str] = typer.Option(None, "--format", metavar="NAME", help=TRACE_FORMAT_HELP),
):
    """Fine-tune a student on kept traces (TRL SFTTrainer; loss on the reasoning and answer only), or with
    --method on-policy --teacher: the student samples, the teacher scores every token (TRL GKD / server distillation)."""
    from r1_distill.distill.train import TrainConfig, train

    metrics = train(TrainConfig(student=student, traces=str(traces), out=str(out), method=method, max_length=max_length,
                                epochs=epochs, learning_rate=lr, effective_batch=effective_batch,
                                per_device_batch=per_device_batch, resume=resume, save_steps=save_steps, save_minutes=save_minutes,
                                group_by_length=group_by_length, precision=precision,
                                gradient_checkpointing=gradient_checkpointing, teacher=teacher, lmbda=lmbda,
                                divergence=divergence, beta=beta, temperature=temperature, max_new_tokens=max_new_tokens,
                                dataset_num_proc=dataset_num_proc, collective_timeout_minutes=collective_timeout,
                                trace_format=trace_format,
                                models_file=str(state.models_file) if state.models_file else None))
    if not metrics:  # not the main process of a multi-process run: it reports
        return
    if method == "on-policy":
        c = metrics["compute"]
        console.print(f"on-policy distilled on {metrics['prompts']} prompts ({metrics['divergence']}, {metrics['steps']} steps), "
                      f"divergence {metrics['first_loss']} -> {metrics['final_loss']}; {c['teacher_forward_passes']} teacher "
                      f"forward passes, {c['student_sampled_tokens']} student tokens sampled; model in {out}")
        return
    console.print(f"trained on {metrics['trained_on']} traces ({metrics['dropped_too_long']} dropped as too long), "
                  f"loss {metrics['first_loss']} -> {metrics['final_loss']}; model in {out}")


@app.command("grpo")
def grpo_cmd(
    config: Optional[Path] = config_option(),
    model: str = typer.Option(..., "--model", help="HF folder or hub id (a distilled student, or a base model with --template r1-zero)."),
    prompts: str = typer.Option(..., "--prompts", help="JSONL, Parquet or hub dataset id with problems and reference answers."),
    out: Path = typer.Option(..., "--out", help="Output model folder."),
    num_generations: int = typer.Option(8, "--num-generations", help="Completions per prompt (the group G)."),
    prompts_per_step: int = typer.Option(4, "--prompts-per-step"),
    steps: int = typer.Option(100, "--steps"),
    lr: float = typer.Option(1e-6, "--lr", "--learning-rate"),
    beta: float = typer.Option(0.001, "--beta", help="KL coefficient (R1: 0.001; 0 drops the reference model)."),
    temperature: float = typer.Option(1.0, "--temperature"),
    max_completion_length: int = typer.Option(1024, "--max-completion-length"),
    rewards: str = typer.Option("correctness,format", "--rewards",
                                help="Comma-separated: correctness, format, arithmetic, language, repetition, length."),
    reward_weights: Optional[str] = typer.Option(None, "--reward-weights", help="Comma-separated, one per reward."),
    length_budget: Optional[int] = typer.Option(None, "--length-budget", metavar="WORDS",
                                                help="length reward: completions over this many words score below 0."),
    template: str = typer.Option("chat", "--template", help="chat (the model's template) | r1-zero (plain text)."),
    prompt_suffix: Optional[str] = typer.Option(None, "--prompt-suffix", help="Default: models.yaml's."),
    method: str = typer.Option("full", "--method", help="full | lora"),
    vllm_server: Optional[str] = typer.Option(None, "--vllm-server", help="URL of `trl vllm-serve` (default: colocate on GPU)."),
    use_vllm: Optional[bool] = typer.Option(None, "--use-vllm/--no-vllm", help="Generate with vLLM (default: when installed, on a GPU)."),
    vllm_max_model_length: Optional[int] = typer.Option(None, "--vllm-max-model-length",
                                                        help="Colocated vLLM's context (default: longest prompt + completion)."),
    vllm_gpu_memory_utilization: float = typer.Option(0.3, "--vllm-gpu-memory-utilization", help="Colocated vLLM's share of each GPU."),
    vllm_tensor_parallel_size: int = typer.Option(1, "--vllm-tensor-parallel-size", help="GPUs per colocated vLLM engine."),
    precision: Optional[str] = typer.Option(None, "--precision", help="bf16 | fp32 (default: bf16 on a GPU, fp32 on a CPU)."),
    collective_timeout: float = typer.Option(180.0, "--collective-timeout", help="Minutes a worker waits for the others."),
    answer_field: str = typer.Option("answer", "--answer-field"),
    problem_field: str = typer.Option("problem", "--problem-field"),
    limit: Optional[int] = typer.Option(None, "--limit"),
    resume: bool = typer.Option(False, "--resume"),
    save_steps: int = typer.Option(50, "--save-steps"),
    seed: int = typer.Option(0, "--seed"),
    sandbox: str = typer.Option("local", "--sandbox", metavar="SPEC",
                                help=SANDBOX_HELP),
):
    """Reinforce a model with GRPO (TRL) and the rule-based rewards of teacher/."""
    from r1_distill.distill.grpo import GRPORunConfig, grpo

    weights = [float(w) for w in reward_weights.split(",")] if reward_weights else None
    names = [r.strip() for r in rewards.split(",") if r.strip()]
    if weights is not None and len(weights) != len(names):
        raise UserError(f"--reward-weights has {len(weights)} values for {len(names)} rewards")
    metrics = grpo(GRPORunConfig(
        model=model, prompts=prompts, out=str(out), num_generations=num_generations, prompts_per_step=prompts_per_step,
        steps=steps, learning_rate=lr, beta=beta, temperature=temperature, max_completion_length=max_completion_length,
        rewards=names, reward_weights=weights, length_budget=length_budget, template=template, prompt_suffix=prompt_suffix, method=method,
        vllm_server=vllm_server, use_vllm=use_vllm, vllm_max_model_length=vllm_max_model_length,
        vllm_gpu_memory_utilization=vllm_gpu_memory_utilization, vllm_tensor_parallel_size=vllm_tensor_parallel_size,
        precision=precision, collective_timeout_minutes=collective_timeout, answer_field=answer_field, problem_field=problem_field, limit=limit, resume=resume,
        save_steps=save_steps, seed=seed, sandbox=sandbox, models_file=str(state.models_file) if state.models_file else None))
    if not metrics:  # not the main process of a multi-process run: it reports
        return
    for name, r in metrics["rewards"].items():
        console.print(f"{name}: {r['first_quarter']:.3f} (first quarter of steps) -> {r['last_quarter']:.3f} (last quarter)")
    console.print(f"{metrics['steps']} steps; model in {out}; reward curves in {out / 'rewards.png'}")


@app.command("eval")
def eval_cmd(
    config: Optional[Path] = config_option(),
    model: str = typer.Option(..., "--model", help="HF folder, hub id, .gguf file, OpenAI-compatible URL or models.yaml teacher."),
    bench: str = typer.Option(..., "--bench", help="JSONL, Parquet or hub dataset id with problems and answers."),
    out: Path = typer.Option(..., "--out", help="Output folder: results.jsonl, summary.json, samples/."),
    samples: int = typer.Option(4, "--samples", "-k", help="K samples per problem."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens"),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Default: models.yaml (R1: 0.6)."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Default: models.yaml (R1: 0.95)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="openai | vllm | transformers | llamacpp (default: by --model)."),
    served_model: Optional[str] = typer.Option(None, "--served-model", help="Model name at the URL."),
    problem_field: str = typer.Option("problem", "--problem-field"),
    answer_field: str = typer.Option("answer", "--answer-field"),
    split: str = typer.Option("test", "--split", help="Split of a hub dataset."),
    limit: Optional[int] = typer.Option(None, "--limit"),
    seed: Optional[int] = typer.Option(0, "--seed"),
    batch_size: int = typer.Option(64, "--batch-size"),
    concurrency: int = typer.Option(64, "--concurrency"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Grading processes (default: every available core)."),
    sandbox: str = typer.Option("local", "--sandbox", metavar="SPEC",
                                help=SANDBOX_HELP),
):
    """pass@1 over K samples and cons@K (majority vote), graded by filter's correctness check."""
    from r1_distill.distill.evaluate import EvalConfig, evaluate, format_table

    summary = evaluate(EvalConfig(
        model=model, bench=bench, out=str(out), samples=samples, max_tokens=max_tokens, temperature=temperature,
        top_p=top_p, backend=backend, served_model=served_model, problem_field=problem_field, answer_field=answer_field,
        split=split, limit=limit, seed=seed, batch_size=batch_size, concurrency=concurrency,
        workers=workers, sandbox=sandbox, models_file=str(state.models_file) if state.models_file else None))
    console.print(format_table(summary))
    console.print(f"per problem: {out / 'results.jsonl'}; summary: {out / 'summary.json'}")


@app.command("demo")
def demo_cmd(
    config: Optional[Path] = config_option(),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default: runs/demo, runs/demo-fast with --fast)."),
    fast: bool = typer.Option(False, "--fast", help="The same stages, smaller (a few minutes; what the test suite runs)."),
    seed: int = typer.Option(0, "--seed"),
):
    """The whole R1 recipe on a toy task, offline on a CPU: cold-start SFT and GRPO of a teacher, sampling through
    the local server, filtering, distillation into a smaller student (and an unfiltered control), evaluation, GGUF."""
    from r1_distill.demo.pipeline import DemoConfig, run_demo

    config = DemoConfig.fast(seed=seed) if fast else DemoConfig(seed=seed)
    if out is not None:
        from dataclasses import replace

        config = replace(config, out=str(out))
    report = run_demo(config)
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
    console.print(f"{report['total_seconds']:.0f} s of stage time; report: {Path(config.out) / 'report.json'}, "
                  f"{Path(config.out) / 'report.png'}")
    console.print("Chat with the distilled student:")
    console.print(f"  {report['chat_command']}", soft_wrap=True)


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
