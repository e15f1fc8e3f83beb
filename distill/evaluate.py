"""`r1-distill eval`: pass@1 over K samples and cons@K (majority vote), as the R1 paper reports them.

Samples come from any backend of `teacher/` (HF folder or hub id through transformers or vLLM, a GGUF
through llama.cpp, an OpenAI-compatible URL), through `generate`, so an interrupted evaluation
resumes where it stopped. Each sample is graded by the same correctness check as `filter`.

* pass@1 = mean over problems of (correct samples / K).
* cons@K: the samples' final answers (last \\boxed{}) vote, answers that math-verify finds equal
  (`0.5`, `\\frac12`) as one; the problem counts as solved when the most-voted answer is right. A
  tie between t answers gives 1/t credit for each right one among them (the expected score of a
  random tie-break), so the figure does not depend on sample order.
  Samples without a final answer do not vote (nor do code answers, which are programs).
* pass@1_stderr: the standard error of pass@1 over problems; unclosed_thinking_rate: the share of
  samples whose thinking never closed.
* pass@k for k = 1, 2, 4, ... up to K by the unbiased estimator 1 - C(n-c, k)/C(n, k) (distill.pass_at_k).
* Multiple-choice problems (grading.choice) vote with their letters.

An output folder holds one evaluation: its identity (a digest of the bench's problems, the model, the
sampling settings) is recorded in eval_run.json, and another evaluation into it is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from r1_distill.errors import UserError
from r1_distill.files import write_json_atomic, write_text_atomic
from r1_distill.grading import TraceParts, grade, last_boxed
from r1_distill.grading.choice import answer_letter, is_choice_reference, parse_choice_reference
from r1_distill.grading.pool import Failure, GradingPool, Job, Step, shared_pool
from r1_distill.manifest import write_manifest
from r1_distill.run_folder import claim_folder
from r1_distill.options import SANDBOX_HELP, internal, option
from r1_distill.traces import TraceRecord, read_traces

from .pass_at_k import pass_at_ks


@dataclass
class EvalConfig:
    model: str = option(help="HF folder, hub id, .gguf file, OpenAI-compatible URL or models.yaml teacher.")
    bench: str = option(help="Named benchmarks of models.yaml, comma-separated (aime24,math500,gpqa-diamond,lcb; "
                             "NAME=FILE reads a local copy of its rows), or one JSONL, Parquet or hub dataset id "
                             "with problems and answers.")
    out: str = option(help="Output folder: results.jsonl, summary.json, samples/ (named benchmarks: a folder each, "
                           "and table.json, table.md, table.png, card_rows.md).")
    samples: Optional[int] = option(None, flags=("--samples", "-k"),
                                    help="K samples per problem (default: the benchmark's in models.yaml, else 4).")
    max_tokens: Optional[int] = option(None, help="New tokens per sample (default: models.yaml, 32768).")
    temperature: Optional[float] = option(None, help="Default: models.yaml (R1: 0.6).")
    top_p: Optional[float] = option(None, help="Default: models.yaml (R1: 0.95).")
    backend: Optional[str] = option(None, help="openai | vllm | transformers | llamacpp (default: by --model).")
    served_model: Optional[str] = option(None, help="Model name at the URL.")
    problem_field: str = option("problem", help="The bench's problem column.")
    answer_field: str = option("answer", help="The bench's answer column.")
    id_field: str = option("id", help="The bench's id column.")
    split: str = option("test", help="Split of a hub dataset.")
    limit: Optional[int] = option(None, help="Only the first N problems.")
    seed: Optional[int] = option(0, help="Sampling seed.")
    batch_size: int = option(64, help="Sequences per generate call (transformers).")
    concurrency: int = option(64, help="Requests in flight (endpoints) / slots (llama.cpp).")
    models_file: Optional[str] = internal(None)
    show_progress: bool = internal(True)
    workers: Optional[int] = option(None, help="Grading processes (default: every available core).")
    sandbox: str = option("local", metavar="SPEC", help=SANDBOX_HELP)
    since: Optional[str] = option(None, metavar="YYYY-MM-DD",
                                  help="LiveCodeBench: first contest date (default: models.yaml, R1's 2024-08-01).")
    until: Optional[str] = option(None, metavar="YYYY-MM-DD",
                                  help="LiveCodeBench: last contest date (default: models.yaml, R1's 2025-01-31).")
    compare_with: Optional[str] = option(None, metavar="STUDENT",
                                         help="models.yaml student whose published figures go beside ours (default: "
                                              "the nearest in size to --model, where its size can be read).")


VOTE_TIMEOUT_S = 30.0
RUN_FILE = "eval_run.json"
def vote_key(answer_text: str) -> Optional[str]:
    """How a sample's final answer (its last \\boxed{}) is shown in `votes`: '1,000', '1000' and '$1000$'
    print alike. Which answers vote together is decided by math-verify (`answer_groups`), not by this."""
    boxed = last_boxed(answer_text)
    if boxed is None:
        return None
    key = boxed.replace(" ", "").replace("$", "").replace("\\!", "").replace("\\left", "").replace("\\right", "")
    key = key.replace("dfrac", "frac").replace("tfrac", "frac").rstrip(".")
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+", key):
        key = key.replace(",", "")
    return key or None


def consensus_credit(votes: list[Optional[str]], correct: list[bool]) -> tuple[float, list[str]]:
    """cons@K credit for one problem and the most-voted answers. A vote is right when any sample
    that cast it was graded right (the grader, not string equality, decides)."""
    counts = Counter(v for v in votes if v is not None)
    if not counts:
        return 0.0, []
    top = max(counts.values())
    leaders = sorted(v for v, n in counts.items() if n == top)
    right = {v for v, ok in zip(votes, correct) if v is not None and ok}
    return sum(1 for v in leaders if v in right) / len(leaders), leaders


def group_votes(answers: list[Optional[str]], pool: Optional[GradingPool] = None,
                timeout_s: float = VOTE_TIMEOUT_S) -> list[Optional[str]]:
    """Each sample's vote, answers that are mathematically equal (`0.5`, `\\frac12`) sharing one: the
    shown form of the first of them. Under a hard time limit; past it, votes fall back to the shown
    forms."""
    shown = [vote_key(a) if a is not None else None for a in answers]
    if sum(v is not None for v in shown) < 2:
        return shown
    job = Job(answers, [Step("groups", "r1_distill.grading.answers:answer_groups", {}, timeout_s)])
    groups = (pool or shared_pool()).run([job])[0]["groups"]
    if isinstance(groups, Failure):
        return shown
    return [shown[g] if g is not None else None for g in groups]


def grade_samples(records: list[TraceRecord], pool: Optional[GradingPool] = None,
                  sandbox: str = "local") -> list[tuple[bool, str]]:
    """The correctness verdict of every sample, on all cores, each under the check's hard time limit
    (code tests in the sandbox `sandbox` names)."""
    parts = [TraceParts.from_record(r) for r in records]
    return [v["correctness"] for v in grade(parts, ["correctness"], {"correctness": {"sandbox": sandbox}}, pool=pool)]


def score_problem(records: list[TraceRecord], verdicts: Optional[list[tuple[bool, str]]] = None,
                  pool: Optional[GradingPool] = None) -> dict:
    if verdicts is None:
        verdicts = grade_samples(records, pool)
    correct = [ok for ok, _ in verdicts]
    closed = ["</think>" in r.completion or bool(r.answer.strip()) for r in records]
    if is_choice_reference(records[0].reference_answer):  # multiple choice: the letters vote
        letters = parse_choice_reference(str(records[0].reference_answer))[1]
        votes = [answer_letter(TraceParts.from_record(r), letters) for r in records]
    else:
        votes = group_votes([r.answer if c else None for r, c in zip(records, closed)], pool)
    reasoning_tokens, answer_tokens, truncated = [], [], 0
    for r in records:
        truncated += r.finish_reason == "length"
        n = r.completion_tokens
        if n is not None:
            if r.reasoning_tokens is not None:
                reasoning = r.reasoning_tokens
            else:  # split the count by characters when the backend does not report the reasoning's share
                reasoning = round(n * len(r.reasoning) / max(1, len(r.reasoning) + len(r.answer)))
            reasoning_tokens.append(reasoning)
            answer_tokens.append(n - reasoning)
    credit, leaders = consensus_credit(votes, correct)
    first = records[0]
    return {"id": first.problem_id, "problem": first.problem, "reference": first.reference_answer,
            "samples": len(records), "correct": sum(correct), "pass@1": sum(correct) / len(records),
            "consensus": credit, "majority": leaders, "votes": dict(Counter(v for v in votes if v is not None)),
            "truncated": truncated, "unclosed": sum(not c for c in closed),
            "mean_reasoning_tokens": _mean(reasoning_tokens), "mean_answer_tokens": _mean(answer_tokens),
            "verdicts": [reason for _, reason in verdicts]}


def _mean(values: list[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def summarize(per_problem: list[dict], k: int) -> dict:
    if not per_problem:
        raise UserError("no problems were evaluated")
    n = len(per_problem)
    rates = [p["pass@1"] for p in per_problem]
    pass1 = sum(rates) / n
    # standard error of the mean over problems (sample variance); 0 for a single problem
    stderr = math.sqrt(sum((x - pass1) ** 2 for x in rates) / (n - 1) / n) if n > 1 else 0.0
    cons = sum(p["consensus"] for p in per_problem) / n
    samples = sum(p["samples"] for p in per_problem)
    reasoning = [p["mean_reasoning_tokens"] for p in per_problem if p["mean_reasoning_tokens"] is not None]
    answer = [p["mean_answer_tokens"] for p in per_problem if p["mean_answer_tokens"] is not None]
    return {"problems": n, "K": k, "pass@1": pass1, "pass@1_stderr": stderr, "cons@K": cons, f"cons@{k}": cons,
            "pass@k": pass_at_ks([(p["samples"], p["correct"]) for p in per_problem]),
            "mean_reasoning_tokens": _mean(reasoning), "mean_answer_tokens": _mean(answer),
            "truncation_rate": sum(p["truncated"] for p in per_problem) / samples,
            "unclosed_thinking_rate": sum(p.get("unclosed", 0) for p in per_problem) / samples}


def evaluate(config: EvalConfig) -> dict:
    """Named benchmarks of models.yaml (`--bench aime24,math500`): each evaluated into a folder of its own,
    then one table beside the published figures (distill.eval_table). Else one bench file or hub id."""
    from .eval_table import evaluate_named

    table = evaluate_named(config)
    return table if table is not None else evaluate_file(config)


def evaluate_file(config: EvalConfig, card: bool = True) -> dict:
    """One bench (a file or hub id) into `config.out`: sampled (resumably), graded, scored."""
    from dataclasses import replace

    config = replace(config, samples=config.samples or 4)
    if config.samples < 1:
        raise UserError("--samples must be at least 1")
    from r1_distill.grading.remote import parse_spec

    parse_spec(config.sandbox)  # a bad --sandbox fails before any sampling
    from r1_distill.prompts import load_prompts

    prompts = load_prompts(config.bench, problem_field=config.problem_field, answer_field=config.answer_field,
                           id_field=config.id_field, split=config.split, limit=config.limit)
    unanswered = [p.id for p in prompts if not p.answer]
    if unanswered:
        raise UserError(f"{len(unanswered)} of {len(prompts)} problems in {config.bench} have no reference answer "
                        f"(field '{config.answer_field}', first: {unanswered[0]}): pass --answer-field NAME")
    from r1_distill.grading.code import require_sandbox_for

    require_sandbox_for((p.answer for p in prompts), config.sandbox)  # before any sampling
    out = Path(config.out)
    claim_run(out, run_identity(config, load_prompts(config.bench, problem_field=config.problem_field,
                                                     answer_field=config.answer_field, id_field=config.id_field,
                                                     split=config.split)))
    generated = _sample(config, out / "samples")
    summary = _score(config, out, {p.id for p in prompts})
    summary.update(generation=generated)
    write_json_atomic(out / "summary.json", summary)
    write_manifest(out, "eval", config=config, inputs={"model": config.model, "bench": config.bench},
                   outputs={"results": "results.jsonl", "summary": "summary.json", "samples": "samples"},
                   metrics={k: summary[k] for k in ("pass@1", "cons@K", "problems", "K")})
    if card:
        _add_to_model_card(Path(config.model), config.bench, summary)
    return summary


def _sample(config: EvalConfig, samples_dir: Path) -> dict:
    from r1_distill.teacher import GenerateConfig, generate_traces as generate

    return generate(GenerateConfig(
        teacher=config.model, prompts=config.bench, out=str(samples_dir), samples=config.samples,
        backend=config.backend, model=config.served_model, max_tokens=config.max_tokens,
        temperature=config.temperature, top_p=config.top_p, seed=config.seed, problem_field=config.problem_field,
        answer_field=config.answer_field, id_field=config.id_field, split=config.split, limit=config.limit,
        batch_size=config.batch_size, concurrency=config.concurrency, models_file=config.models_file,
        show_progress=config.show_progress))


def _score(config: EvalConfig, out: Path, wanted: set[str]) -> dict:
    """Grade the first K samples of the wanted problems, write results.jsonl; the summary."""
    by_problem: dict[str, list[TraceRecord]] = {}
    for record in read_traces(out / "samples"):
        if record.sample_index < config.samples and record.problem_id in wanted:
            by_problem.setdefault(record.problem_id, []).append(record)
    groups = [sorted(rs, key=lambda r: r.sample_index) for _, rs in sorted(by_problem.items())]
    with GradingPool(config.workers) as pool:
        flat = [r for rs in groups for r in rs]
        verdicts = iter(grade_samples(flat, pool, config.sandbox))
        per_problem = [score_problem(rs, [next(verdicts) for _ in rs], pool) for rs in groups]
    summary = summarize(per_problem, config.samples)
    first = groups[0][0]
    summary.update(model=config.model, bench=config.bench,
                   bench_digest=json.loads((out / RUN_FILE).read_text())["bench_digest"],
                   backend=first.backend, sampling=first.sampling)
    write_text_atomic(out / "results.jsonl", "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in per_problem))
    return summary


def run_identity(config: EvalConfig, bench_prompts: list) -> dict:
    """What an evaluation folder holds: which problems (a digest of every id, problem and reference of
    the bench, whatever --limit takes of it) sampled from which model, how. --samples and --limit may
    grow within one identity: only the current problems' first K samples are scored."""
    h = hashlib.sha256()
    for p in bench_prompts:
        h.update(json.dumps([p.id, p.problem, p.answer], ensure_ascii=False).encode())
    return {"bench": Path(config.bench).name, "bench_digest": h.hexdigest()[:16], "bench_problems": len(bench_prompts),
            "model": config.model, "served_model": config.served_model, "backend": config.backend,
            "temperature": config.temperature, "top_p": config.top_p, "max_tokens": config.max_tokens,
            "seed": config.seed, "split": config.split,
            "fields": [config.id_field, config.problem_field, config.answer_field]}


def claim_run(out: Path, identity: dict) -> None:
    """Record the evaluation's identity in `out`, or refuse to mix it with the one already there."""
    claim_folder(out, identity, run_file=RUN_FILE, holds="another evaluation",
                 mixing="Results of two benches or settings are never mixed (one folder per model and bench)",
                 from_before=("samples", "summary.json"))


def format_table(summary: dict) -> str:
    if "benches" in summary:  # named benchmarks: one table beside the published figures
        from .eval_table import format_bench_table

        return format_bench_table(summary)
    k = summary["K"]
    passes = ", ".join(f"{name} {value:.1%}" for name, value in summary.get("pass@k", {}).items() if name != "pass@1")
    rows = [("problems", f"{summary['problems']}"), ("pass@1", f"{summary['pass@1']:.1%} +/- {summary.get('pass@1_stderr', 0.0):.1%}  (mean over {k} samples, standard error)"),
            (f"cons@{k}", f"{summary['cons@K']:.1%}"),
            *([("pass@k", f"{passes}  (unbiased estimator)")] if passes else []),
            ("mean reasoning tokens", _fmt(summary["mean_reasoning_tokens"])),
            ("mean answer tokens", _fmt(summary["mean_answer_tokens"])),
            ("truncated", f"{summary['truncation_rate']:.1%}"),
            ("thinking never closed", f"{summary.get('unclosed_thinking_rate', 0.0):.1%}")]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _add_to_model_card(model: Path, bench: str, summary: dict) -> None:
    """Record the result in the model card `r1-distill train` wrote (a section per benchmark)."""
    card = model / "README.md"
    if not model.is_dir() or not card.is_file() or "r1-distill" not in card.read_text(encoding="utf-8")[:300]:
        return
    text = card.read_text(encoding="utf-8")
    header = "\n## Evaluation\n\n| benchmark | pass@1 | cons@K | K | problems |\n|---|---|---|---|---|\n"
    row = (f"| {Path(bench).name} | {summary['pass@1']:.1%} | {summary['cons@K']:.1%} | {summary['K']} | "
           f"{summary['problems']} |\n")
    if header not in text:
        text = text.rstrip("\n") + "\n" + header
    lines = [line for line in text.splitlines(keepends=True) if not line.startswith(f"| {Path(bench).name} |")]
    write_text_atomic(card, "".join(lines).rstrip("\n") + "\n" + row)
