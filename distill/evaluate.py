"""`r1-distill eval`: pass@1 over K samples and cons@K (majority vote), as the R1 paper reports them.

Samples come from any backend of `teacher/` (HF folder or hub id through transformers or vLLM, a GGUF
through llama.cpp, an OpenAI-compatible URL), through `generate`, so an interrupted evaluation
resumes where it stopped. Each sample is graded by the same correctness check as `filter`.

* pass@1 = mean over problems of (correct samples / K).
* cons@K: the samples' final answers (last \\boxed{}) vote; the problem counts as solved when the
  most-voted answer is right. A tie between t answers gives 1/t credit for each right one among
  them (the expected score of a random tie-break), so the figure does not depend on sample order.
  Samples without a final answer do not vote.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from r1_distill.errors import UserError
from r1_distill.files import write_json_atomic, write_text_atomic
from r1_distill.manifest import write_manifest
from r1_distill.traces import TraceRecord, read_traces


@dataclass
class EvalConfig:
    model: str  # HF folder, hub id, .gguf file, OpenAI-compatible URL, or a models.yaml teacher
    bench: str  # JSONL, Parquet or hub dataset id with problem and answer fields
    out: str
    samples: int = 4  # K
    max_tokens: Optional[int] = None  # default: models.yaml (32768)
    temperature: Optional[float] = None  # default: models.yaml (0.6)
    top_p: Optional[float] = None  # default: models.yaml (0.95)
    backend: Optional[str] = None
    served_model: Optional[str] = None  # model name at the URL
    problem_field: str = "problem"
    answer_field: str = "answer"
    id_field: str = "id"
    split: str = "test"
    limit: Optional[int] = None
    seed: Optional[int] = 0
    batch_size: int = 64  # transformers
    concurrency: int = 64  # endpoints, llama.cpp slots
    models_file: Optional[str] = None
    show_progress: bool = True


def vote_key(answer_text: str) -> Optional[str]:
    """The final answer a sample votes for, normalised so that '1,000', '1000' and '$1000$' agree."""
    from r1_distill.teacher.verifiers import _as_integer, last_boxed

    boxed = last_boxed(answer_text)
    if boxed is None:
        return None
    as_int = _as_integer(boxed)
    if as_int is not None:
        return str(as_int)
    key = boxed.replace(" ", "").replace("$", "").replace("\\!", "").replace("\\left", "").replace("\\right", "")
    return key.replace("dfrac", "frac").replace("tfrac", "frac").rstrip(".") or None


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


def score_problem(records: list[TraceRecord]) -> dict:
    from r1_distill.teacher.verifiers import TraceParts, check_correctness

    correct, votes, reasoning_tokens, answer_tokens, truncated = [], [], [], [], 0
    for r in records:
        parts = TraceParts(completion=r.completion, reasoning=r.reasoning, answer=r.answer,
                           thinking_closed="</think>" in r.completion, reference=r.reference_answer)
        ok, _ = check_correctness(parts)
        correct.append(ok)
        votes.append(vote_key(r.answer) if parts.thinking_closed else None)
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
            "truncated": truncated,
            "mean_reasoning_tokens": _mean(reasoning_tokens), "mean_answer_tokens": _mean(answer_tokens)}


def _mean(values: list[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def summarize(per_problem: list[dict], k: int) -> dict:
    if not per_problem:
        raise UserError("no problems were evaluated")
    n = len(per_problem)
    pass1 = sum(p["pass@1"] for p in per_problem) / n
    cons = sum(p["consensus"] for p in per_problem) / n
    samples = sum(p["samples"] for p in per_problem)
    reasoning = [p["mean_reasoning_tokens"] for p in per_problem if p["mean_reasoning_tokens"] is not None]
    answer = [p["mean_answer_tokens"] for p in per_problem if p["mean_answer_tokens"] is not None]
    return {"problems": n, "K": k, "pass@1": pass1, "cons@K": cons, f"cons@{k}": cons,
            "mean_reasoning_tokens": _mean(reasoning), "mean_answer_tokens": _mean(answer),
            "truncation_rate": sum(p["truncated"] for p in per_problem) / samples}


def evaluate(config: EvalConfig) -> dict:
    from r1_distill.teacher.generate import GenerateConfig, generate

    if config.samples < 1:
        raise UserError("--samples must be at least 1")
    from r1_distill.teacher.prompts import load_prompts

    prompts = load_prompts(config.bench, problem_field=config.problem_field, answer_field=config.answer_field,
                           id_field=config.id_field, split=config.split, limit=config.limit)
    unanswered = [p.id for p in prompts if not p.answer]
    if unanswered:
        raise UserError(f"{len(unanswered)} of {len(prompts)} problems in {config.bench} have no reference answer "
                        f"(field '{config.answer_field}', first: {unanswered[0]}): pass --answer-field NAME")
    out = Path(config.out)
    samples_dir = out / "samples"
    generated = generate(GenerateConfig(
        teacher=config.model, prompts=config.bench, out=str(samples_dir), samples=config.samples,
        backend=config.backend, model=config.served_model, max_tokens=config.max_tokens,
        temperature=config.temperature, top_p=config.top_p, seed=config.seed, problem_field=config.problem_field,
        answer_field=config.answer_field, id_field=config.id_field, split=config.split, limit=config.limit,
        batch_size=config.batch_size, concurrency=config.concurrency, models_file=config.models_file,
        show_progress=config.show_progress))
    by_problem: dict[str, list[TraceRecord]] = {}
    for record in read_traces(samples_dir):
        if record.sample_index < config.samples:
            by_problem.setdefault(record.problem_id, []).append(record)
    per_problem = [score_problem(sorted(rs, key=lambda r: r.sample_index)) for rs in by_problem.values()]
    summary = summarize(per_problem, config.samples)
    first = next(iter(by_problem.values()))[0]
    summary.update(model=config.model, bench=config.bench, backend=first.backend, sampling=first.sampling,
                   generation=generated)
    lines = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in per_problem)
    write_text_atomic(out / "results.jsonl", lines)
    write_json_atomic(out / "summary.json", summary)
    write_manifest(out, "eval", config=config, inputs={"model": config.model, "bench": config.bench},
                   outputs={"results": "results.jsonl", "summary": "summary.json", "samples": "samples"},
                   metrics={k: summary[k] for k in ("pass@1", "cons@K", "problems", "K")})
    _add_to_model_card(Path(config.model), config.bench, summary)
    return summary


def format_table(summary: dict) -> str:
    k = summary["K"]
    rows = [("problems", f"{summary['problems']}"), ("pass@1", f"{summary['pass@1']:.1%}  (mean over {k} samples)"),
            (f"cons@{k}", f"{summary['cons@K']:.1%}"),
            ("mean reasoning tokens", _fmt(summary["mean_reasoning_tokens"])),
            ("mean answer tokens", _fmt(summary["mean_answer_tokens"])),
            ("truncated", f"{summary['truncation_rate']:.1%}")]
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
