"""`r1-distill filter`: rejection sampling. Every trace gets every check's verdict; the ones that
pass all of them are kept (up to M per prompt), the others go to dropped.jsonl with the reasons.
Nothing is silently dropped: len(kept) + len(dropped) == len(input)."""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from r1_distill.errors import UserError
from r1_distill.files import read_jsonl, write_json_atomic
from r1_distill.manifest import write_manifest
from r1_distill.sft_dataset import dataset_card, write_sft_dataset
from r1_distill.trace_formats import DATASET_BACKEND
from r1_distill.traces import CheckResult, TraceRecord, read_traces, write_traces

from r1_distill.grading import TraceParts, grade
from r1_distill.grading.code import require_sandbox_for
from r1_distill.grading.remote import parse_spec
from r1_distill.grading.pool import GradingPool, available_cpus

# order matters: a dropped trace's reason is its first failing check
CHECK_ORDER = ["decontamination", "duplicate_prompt", "duplicate_trace", "length", "format", "correctness",
               "arithmetic", "language", "readability", "repetition", "pass_rate_band", "keep_per_prompt"]


@dataclass
class FilterConfig:
    traces: str
    out: str
    decontaminate: list[str] = field(default_factory=list)  # benchmark files (JSONL with `problem`)
    reference: Optional[str] = None  # JSONL with id and answer, when traces carry no reference
    keep_per_prompt: Optional[int] = None
    min_pass_rate: float = 0.0
    max_pass_rate: float = 1.0
    ngram: int = 8  # decontamination word n-gram (open-r1, s1)
    language: str = "Latin"
    min_language_share: float = 0.95
    max_repetition: float = 0.3
    max_paragraph_chars: int = 3000
    allow_code: bool = False
    check_arithmetic: bool = False  # every plain "a op b = c" step in the reasoning must hold
    min_tokens: int = 0
    max_tokens: Optional[int] = None
    judge: Optional[str] = None  # OpenAI-compatible base URL of an LLM judge for unparsable answers
    judge_model: str = "judge"
    workers: Optional[int] = None  # grading processes; default: every available core
    sandbox: str = "local"  # where code tests run: local (bubblewrap), piston:URL or e2b (grading.remote)
    trace_format: Optional[str] = None  # the traces' row shape (r1_distill.trace_formats); default: detected


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _normalized(text: str) -> str:
    return " ".join(_words(text))


class Decontaminator:
    def __init__(self, files: list[str], n: int = 8):
        self.n = n
        self.grams: dict[tuple, str] = {}
        self.short: dict[str, str] = {}
        for file in files:
            path = Path(file)
            if not path.is_file():
                raise UserError(f"benchmark file {file} does not exist (--decontaminate)")
            for row in read_jsonl(path):
                problem = row.get("problem") or row.get("question") or row.get("prompt")
                if not problem:
                    raise UserError(f"{file}: a record has no 'problem' (or 'question'/'prompt') field")
                label = f"{path.name}:{row.get('id', '?')}"
                words = _words(problem)
                if len(words) < n:
                    self.short[" ".join(words)] = label
                for i in range(len(words) - n + 1):
                    self.grams.setdefault(tuple(words[i: i + n]), label)

    def match(self, problem: str) -> Optional[str]:
        words = _words(problem)
        if " ".join(words) in self.short:
            return self.short[" ".join(words)]
        for i in range(len(words) - self.n + 1):
            hit = self.grams.get(tuple(words[i: i + self.n]))
            if hit:
                return hit
        return None


def _load_references(path: Optional[str]) -> dict[str, str]:
    if not path:
        return {}
    if not Path(path).is_file():
        raise UserError(f"reference file {path} does not exist (--reference)")
    refs = {}
    for row in read_jsonl(path):
        if "id" not in row or "answer" not in row:
            raise UserError(f"{path}: every record needs 'id' and 'answer'")
        refs[str(row["id"])] = str(row["answer"])
    return refs


def _judge(config: FilterConfig, problem: str, answer: str, reference: str) -> Optional[bool]:
    from openai import OpenAI

    client = OpenAI(base_url=config.judge, api_key="judge", max_retries=2, timeout=120)
    prompt = (f"Problem:\n{problem}\n\nReference answer: {reference}\nCandidate final answer: {answer}\n\n"
              "Is the candidate mathematically equivalent to the reference? Reply with YES or NO only.")
    reply = client.chat.completions.create(model=config.judge_model, messages=[{"role": "user", "content": prompt}],
                                           max_tokens=8, temperature=0)
    text = (reply.choices[0].message.content or "").strip().upper()
    return True if text.startswith("YES") else False if text.startswith("NO") else None


# A public trace set without reference answers (Mixture-of-Thoughts, OpenThoughts...) was filtered by its makers:
# its traces go through every other check and are kept unverified, counted in the report. Our own traces without a
# reference are dropped (a prompt file missing its answers is a mistake to show, not to train on).
UNVERIFIED = "not verified: the source has no reference answer"
GRADED_CHECKS = ["length", "format", "correctness", "arithmetic", "language", "readability", "repetition"]


def _check_options(config: FilterConfig) -> dict[str, dict]:
    return {
        "correctness": {"sandbox": config.sandbox},
        "length": {"min_tokens": config.min_tokens, "max_tokens": config.max_tokens},
        "language": {"expected": config.language, "min_share": config.min_language_share},
        "readability": {"max_paragraph_chars": config.max_paragraph_chars, "allow_code": config.allow_code},
        "repetition": {"max_ratio": config.max_repetition},
    }


def run_checks(records: list[TraceRecord], config: FilterConfig) -> tuple[list[dict[str, CheckResult]], float]:
    """Every graded check on every record, on all cores, each under its hard time limit
    (r1_distill.grading); an unreadable answer goes to the LLM judge when one is given. Also returns
    the CPU seconds the grading processes spent."""
    names = [n for n in GRADED_CHECKS if n != "arithmetic" or config.check_arithmetic]
    parts = [TraceParts.from_record(r) for r in records]
    with GradingPool(config.workers) as pool:
        verdicts = grade(parts, names, _check_options(config), pool=pool)
        cpu_seconds = pool.cpu_seconds
    results = []
    for record, p, verdict in zip(records, parts, verdicts):
        passed, reason = verdict["correctness"]
        if (not passed and config.judge and p.answer.strip() and p.reference
                and ("cannot be parsed" in reason or "no parsable" in reason)):
            judged = _judge(config, record.problem, p.answer, p.reference)
            if judged is not None:
                verdict["correctness"] = (judged, f"LLM judge: {'equivalent' if judged else 'not equivalent'}")
        if record.backend == DATASET_BACKEND and not p.reference:
            verdict["correctness"] = (True, UNVERIFIED)
        results.append({name: CheckResult(passed=v[0], reason=v[1]) for name, v in verdict.items()})
    return results, cpu_seconds


def filter_traces(config: FilterConfig) -> dict:
    started = time.perf_counter()
    parse_spec(config.sandbox)  # a bad --sandbox fails here, before anything is read
    # concurrent sampling appends in completion order; sorting makes kept.jsonl the same file every run
    records = sorted(read_traces(config.traces, format=config.trace_format), key=lambda r: (r.problem_id, r.sample_index))
    if not records:
        raise UserError(f"no trace records in {config.traces}")
    refs = _load_references(config.reference)
    decon = Decontaminator(config.decontaminate, config.ngram) if config.decontaminate else None
    if not (0 <= config.min_pass_rate <= config.max_pass_rate <= 1):
        raise UserError("pass-rate band must satisfy 0 <= --min-pass-rate <= --max-pass-rate <= 1")

    seen_prompts: dict[str, str] = {}
    seen_traces: dict[tuple[str, str], int] = {}
    contamination: dict[str, Optional[str]] = {}
    for r in records:
        if r.reference_answer is None and r.problem_id in refs:
            r.reference_answer = refs[r.problem_id]
        r.checks = {}
        if decon is not None:
            if r.problem_id not in contamination:
                contamination[r.problem_id] = decon.match(r.problem)
            hit = contamination[r.problem_id]
            r.checks["decontamination"] = CheckResult(
                passed=hit is None, reason=f"shares a {config.ngram}-gram with {hit}" if hit else "clean")
        norm = _normalized(r.problem)
        first = seen_prompts.setdefault(norm, r.problem_id)
        r.checks["duplicate_prompt"] = CheckResult(
            passed=first == r.problem_id, reason=f"same problem as {first}" if first != r.problem_id else "unique")
        key = (r.problem_id, " ".join(r.completion.lower().split()))  # symbols count: `a + b` is not `a - b`
        first_sample = seen_traces.setdefault(key, r.sample_index)
        r.checks["duplicate_trace"] = CheckResult(
            passed=first_sample == r.sample_index,
            reason=f"same trace as sample {first_sample}" if first_sample != r.sample_index else "unique")
    require_sandbox_for((r.reference_answer for r in records), config.sandbox)
    graded_at = time.perf_counter()
    graded, grading_cpu_s = run_checks(records, config)
    for r, verdicts in zip(records, graded):
        r.checks.update(verdicts)
    grading_s = time.perf_counter() - graded_at

    by_prompt: dict[str, list[TraceRecord]] = defaultdict(list)
    for r in records:
        by_prompt[r.problem_id].append(r)
    pass_rates = {}
    for pid, group in by_prompt.items():
        rate = sum(r.checks["correctness"].passed for r in group) / len(group)
        pass_rates[pid] = rate
        in_band = config.min_pass_rate <= rate <= config.max_pass_rate
        kept_here = 0
        for r in sorted(group, key=lambda r: r.sample_index):
            r.meta["pass_rate"] = rate
            r.checks["pass_rate_band"] = CheckResult(
                passed=in_band, reason=f"prompt pass rate {rate:.2f} in [{config.min_pass_rate}, {config.max_pass_rate}]"
                if in_band else f"prompt pass rate {rate:.2f} outside [{config.min_pass_rate}, {config.max_pass_rate}]")
            good = all(r.checks[c].passed for c in CHECK_ORDER if c in r.checks)
            if good and config.keep_per_prompt is not None and kept_here >= config.keep_per_prompt:
                r.checks["keep_per_prompt"] = CheckResult(passed=False, reason=f"already kept {config.keep_per_prompt} for this prompt")
                good = False
            elif good:
                r.checks["keep_per_prompt"] = CheckResult(passed=True, reason="kept")
            kept_here += good
            r.kept = good

    kept = [r for r in records if r.kept]
    dropped = [r for r in records if not r.kept]
    reasons = Counter(next(c for c in CHECK_ORDER if c in r.checks and not r.checks[c].passed) for r in dropped)
    failing = Counter(c for r in records for c, v in r.checks.items() if not v.passed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    write_traces(out / "kept.jsonl", kept)
    write_traces(out / "dropped.jsonl", dropped)
    elapsed = time.perf_counter() - started
    report = {
        "input": len(records), "kept": len(kept), "dropped": len(dropped), "prompts": len(by_prompt),
        "prompts_with_a_kept_trace": len({r.problem_id for r in kept}),
        "kept_unverified": sum(r.checks["correctness"].reason == UNVERIFIED for r in kept),
        "dropped_by_first_reason": dict(reasons), "failing_by_check": dict(failing),
        "mean_pass_rate": sum(pass_rates.values()) / len(pass_rates),
        "pass_rates": pass_rates, "seconds": round(elapsed, 3), "traces_per_s": round(len(records) / elapsed, 1),
        "grading": {"workers": config.workers or available_cpus(), "seconds": round(grading_s, 3),
                    "cpu_seconds": round(grading_cpu_s, 3),
                    "timed_out": sum("(hard limit)" in v.reason for r in records for v in r.checks.values())},
    }
    write_json_atomic(out / "report.json", report)
    card = dataset_card(name=out.name, report=report, sources=dict(Counter(r.teacher for r in records)),
                        checks=sorted({c for r in kept for c in r.checks}), decontaminated_against=config.decontaminate)
    write_sft_dataset(out / "dataset", kept, card)
    _plots(out, records, pass_rates)
    write_manifest(out, "filter", config=config, inputs={"traces": config.traces},
                   outputs={"kept": "kept.jsonl", "dropped": "dropped.jsonl", "dataset": "dataset"},
                   metrics={k: report[k] for k in ("input", "kept", "dropped", "mean_pass_rate")})
    return report


def _plots(out: Path, records: list[TraceRecord], pass_rates: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].hist(list(pass_rates.values()), bins=11, range=(0, 1), color="#4477aa")
    axes[0].set(title="Pass rate per prompt", xlabel="share of samples correct", ylabel="prompts")
    kept_len = [r.completion_tokens or len(r.completion.split()) for r in records if r.kept]
    drop_len = [r.completion_tokens or len(r.completion.split()) for r in records if not r.kept]
    axes[1].hist([kept_len, drop_len], bins=20, label=["kept", "dropped"], color=["#228833", "#cc6677"], stacked=True)
    axes[1].set(title="Trace length", xlabel="completion tokens", ylabel="traces")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out / "report.png", dpi=100)
    plt.close(fig)
