"""`r1-distill filter`: rejection sampling. Every trace gets every check's verdict; the ones that
pass all of them are kept (up to M per prompt), the others go to dropped.jsonl with the reasons.
Nothing is silently dropped: len(kept) + len(dropped) == len(input).

It streams, in memory that does not grow with the number of traces: the sources are read a row at a time
(r1_distill.trace_sources) into sorted runs on disk (r1_distill.spill, a buffer at a time), which come
back merged in (problem, sample) order, so each problem's samples arrive together. Problems are graded a
batch at a time on every core (the next batch is read while one is graded); the per-problem steps
(pass-rate band, keep-per-prompt, duplicate traces) keep one problem's verdicts, the duplicate-prompt step
a hash per problem, decontamination the benchmarks' n-grams; kept.jsonl, dropped.jsonl and dataset/ are
written as the batches finish, under temporary names moved into place at the end."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from array import array
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Iterator, Optional

from r1_distill.errors import UserError
from r1_distill.files import read_jsonl, write_json_atomic
from r1_distill.manifest import write_manifest
from r1_distill.options import internal, option
from r1_distill.progress import count_progress
from r1_distill.sft_dataset import SFTDatasetWriter, dataset_card
from r1_distill.spill import SortedSpill
from r1_distill.trace_formats import DATASET_BACKEND, DatasetReader
from r1_distill.trace_sources import HUB_ID, parse_sources, source_records
from r1_distill.traces import CheckResult, TraceRecord

from r1_distill.grading import TraceParts, grade
from r1_distill.grading.code import is_code_reference
from r1_distill.grading.remote import parse_spec, require_sandbox
from r1_distill.grading.pool import GradingPool, available_cpus

# order matters: a dropped trace's reason is its first failing check
CHECK_ORDER = ["decontamination", "duplicate_prompt", "duplicate_trace", "length", "format", "correctness",
               "arithmetic", "language", "readability", "repetition", "pass_rate_band", "keep_per_prompt"]
BATCH_TRACES = 512  # traces graded together (whole problems: a batch ends at a problem's last sample)
BATCH_CHARS = 24 << 20  # ... or fewer, when they are long

TRACES_HELP = ("Traces: a folder written by r1-distill generate, a .jsonl/.parquet file (ours or a public set's rows) "
               "or a datasets hub id, streamed. Repeat to mix sources; each may end in :cap=N (at most its first N "
               "traces), :weight=W (that share, 0 < W <= 1, of its problems, chosen by a hash of the problem: the same "
               "every run), and for a hub id :config=NAME and :split=NAME (default train). Duplicates are found across "
               "sources; report.json and the dataset card count each source.")
SANDBOX_HELP = "Where code tests run: local (bubblewrap), piston:URL (a Piston server) or e2b (E2B_API_KEY)."
TRACE_FORMAT_HELP = ("The traces' row shape, e.g. openr1-math, openthoughts, am-deepseek-r1 (default: detected from the "
                     "columns; an unknown shape's error lists every format).")


@dataclass
class FilterConfig:
    traces: list[str] = option(help=TRACES_HELP, metavar="PATH_OR_HUB_ID")
    out: str = option(help="Folder for kept.jsonl, dropped.jsonl, report.json, report.png and dataset/ (Parquet + card).")
    decontaminate: list[str] = option(
        default_factory=list, metavar="BENCH",
        help="Benchmark to decontaminate against: a JSONL file with `problem` (or question/prompt), or a datasets hub "
             "id (every split, or HUB_ID:split=NAME). Repeat for several.")
    reference: Optional[str] = option(None, help="JSONL with id and answer, for traces that carry no reference.")
    keep_per_prompt: Optional[int] = option(None, help="Keep at most M correct traces per prompt.")
    min_pass_rate: float = option(0.0, help="Drop the prompts whose share of correct samples is below this.")
    max_pass_rate: float = option(1.0, help="Drop the prompts whose share of correct samples is above this.")
    ngram: int = option(8, help="Word n-gram shared with a benchmark problem that counts as contamination (open-r1, s1: 8).")
    language: str = option("Latin", help="Expected script of the traces.")
    min_language_share: float = option(0.95, help="Share of the letters that must be in the expected script.")
    max_repetition: float = option(0.3, help="Drop traces whose repeated n-gram share is above this.")
    max_paragraph_chars: int = option(3000, help="Drop traces with a longer paragraph (readability).")
    allow_code: bool = option(False, help="Keep traces with code blocks.")
    check_arithmetic: bool = option(False, help="Drop traces with a wrong 'a op b = c' step, even when the answer is right.")
    min_tokens: int = option(0, help="Drop traces shorter than this.")
    max_tokens: Optional[int] = option(None, help="Drop traces longer than this.")
    judge: Optional[str] = option(None, help="OpenAI-compatible URL of an LLM judge for unparsable answers.")
    judge_model: str = option("judge", help="The judge's model name.")
    workers: Optional[int] = option(None, help="Grading processes (default: every available core).")
    shard: Optional[str] = option(None, metavar="I/N", help=(
        "Filter only shard I of N (0 <= I < N): the problems whose normalized text hashes to I, so a problem's "
        "samples and its duplicates under other ids stay in one shard; run the N shards on N machines, each into "
        "its own --out (caps per source then apply per shard)."))
    sandbox: str = option("local", metavar="SPEC", help=SANDBOX_HELP)
    trace_format: Optional[str] = option(None, flags=("--format",), metavar="NAME", help=TRACE_FORMAT_HELP)
    push_to_hub: Optional[str] = option(
        None, metavar="REPO",
        help="Push dataset/ (Parquet shards and card) to this hub dataset repo when done; needs a token (HF_TOKEN or "
             "`hf auth login`), checked before anything runs.")
    spill_bytes: Optional[int] = internal(None)  # trace bytes held before a sorted run goes to disk (default: spill.BUFFER_BYTES)

    def __post_init__(self):
        if self.shard is not None:
            parse_shard(self.shard)  # a malformed --shard stops here, before anything is read
        if isinstance(self.traces, (str, os.PathLike)):  # one source, as callers before mixing passed it
            self.traces = [str(self.traces)]
        self.traces = [str(t) for t in self.traces]
        self.decontaminate = [str(d) for d in self.decontaminate or []]


def parse_shard(spec: str) -> tuple[int, int]:
    """`I/N` -> (I, N)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec or "")
    if not match or not int(match[1]) < int(match[2]):
        raise UserError(f"--shard {spec}: give I/N with 0 <= I < N, e.g. --shard 0/4 (the first of 4 shards)")
    return int(match[1]), int(match[2])


def in_shard(problem: str, shard: tuple[int, int]) -> bool:
    return int.from_bytes(_hash(_normalized(problem))[:8], "little") % shard[1] == shard[0]


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _normalized(text: str) -> str:
    return " ".join(_words(text))


class Decontaminator:
    """The word n-grams of every benchmark problem (memory bounded by the benchmarks, not the traces)."""

    def __init__(self, files: list[str], n: int = 8):
        self.n = n
        self.grams: dict[tuple, str] = {}
        self.short: dict[str, str] = {}
        for file in files:
            for name, row in _benchmark_rows(file):
                problem = row.get("problem") or row.get("question") or row.get("prompt")
                if not problem:
                    raise UserError(f"{file}: a record has no 'problem' (or 'question'/'prompt') field")
                label = f"{name}:{row.get('id', row.get('unique_id', '?'))}"
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


def _benchmark_rows(spec: str) -> Iterator[tuple[str, dict]]:
    """A benchmark's rows: a JSONL file, or a hub dataset (`HUB_ID[:split=NAME]`, every split by default) streamed."""
    path = Path(spec)
    if path.is_file():
        for row in read_jsonl(path):
            yield path.name, row
        return
    location, _, split = spec.partition(":split=")
    if path.exists() or not HUB_ID.match(location):
        raise UserError(f"benchmark file {spec} does not exist (--decontaminate)")
    import datasets

    streams = datasets.load_dataset(location, split=split or None, streaming=True)
    for stream in ([streams] if split else streams.values()):
        for row in stream:
            yield location, row


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


def run_checks(records: list[TraceRecord], config: FilterConfig,
               pool: Optional[GradingPool] = None) -> tuple[list[dict[str, CheckResult]], float]:
    """Every graded check on every record, on all cores, each under its hard time limit
    (r1_distill.grading); an unreadable answer goes to the LLM judge when one is given. Also returns
    the CPU seconds the grading processes spent."""
    if pool is None:
        with GradingPool(config.workers) as own:
            return run_checks(records, config, own)
    names = [n for n in GRADED_CHECKS if n != "arithmetic" or config.check_arithmetic]
    parts = [TraceParts.from_record(r) for r in records]
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


def require_hub_token(repo: str) -> None:
    """--push-to-hub needs a token: HF_TOKEN or the stored login. Checked before any work."""
    from huggingface_hub import get_token

    if not re.fullmatch(r"([\w.-]+/)?[\w.-]+", repo):
        raise UserError(f"--push-to-hub {repo}: not a hub repo id (owner/name)")
    if not get_token():
        raise UserError(f"--push-to-hub {repo} needs a Hugging Face token: set HF_TOKEN or run `hf auth login`")


def push_dataset(folder: Path, repo: str) -> str:
    """Upload the dataset folder (shards and card) to a hub dataset repo, made if it does not exist."""
    from huggingface_hub import HfApi

    api = HfApi()
    url = api.create_repo(repo, repo_type="dataset", exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=url.repo_id, repo_type="dataset",
                      commit_message="r1-distill filter: kept traces")
    return f"{url}"


def _hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).digest()


class _Lines:
    """A JSONL output written a record at a time under a temporary name, moved into place by `finish`."""

    def __init__(self, path: Path):
        self.path = path
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        self.tmp = Path(tmp)
        self.fh = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, record: TraceRecord) -> None:
        self.fh.write(json.dumps(record.model_dump(mode="json"), ensure_ascii=False) + "\n")

    def finish(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.path)

    def close(self) -> None:
        if not self.fh.closed:
            self.fh.close()
        self.tmp.unlink(missing_ok=True)


@dataclass
class _Tally:
    """What the report, the card and the plots need, in memory that grows with the problems at most."""

    input: int = 0
    kept: int = 0
    dropped: int = 0
    kept_unverified: int = 0
    timed_out: int = 0
    prompts_with_a_kept_trace: int = 0
    grading_s: float = 0.0
    grading_cpu_s: float = 0.0

    def __post_init__(self):
        self.reasons: Counter = Counter()
        self.failing: Counter = Counter()
        self.teachers: Counter = Counter()
        self.kept_checks: set[str] = set()
        self.pass_rates: dict[str, float] = {}
        self.kept_len, self.drop_len = array("q"), array("q")


def filter_traces(config: FilterConfig) -> dict:
    started = time.perf_counter()
    parse_spec(config.sandbox)  # a bad --sandbox fails here, before anything is read
    if not (0 <= config.min_pass_rate <= config.max_pass_rate <= 1):
        raise UserError("pass-rate band must satisfy 0 <= --min-pass-rate <= --max-pass-rate <= 1")
    if config.push_to_hub:
        require_hub_token(config.push_to_hub)
    sources = parse_sources(config.traces)
    refs = _load_references(config.reference)
    decon = Decontaminator(config.decontaminate, config.ngram) if config.decontaminate else None
    out = Path(config.out)
    made_out = not out.exists()  # a run refused while reading (an unknown shape, no sandbox) leaves no folder behind
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".filter-", dir=out))
    outputs: list = []
    finished = False
    try:
        spill = SortedSpill(work, **({"buffer_bytes": config.spill_bytes} if config.spill_bytes else {}))
        per_source = _spill_sources(config, sources, spill, refs)
        # named as given; a source given twice is told apart by its place
        by_name = {(s.spec if [t.spec for t in sources].count(s.spec) == 1 else f"{s.spec} (#{i + 1})"): counts
                   for i, (s, counts) in enumerate(zip(sources, per_source))}
        if not spill.count:
            raise UserError(f"no trace records in {', '.join(config.traces)}")
        kept_out, dropped_out = _Lines(out / "kept.jsonl"), _Lines(out / "dropped.jsonl")
        dataset = SFTDatasetWriter(out / "dataset")
        outputs = [kept_out, dropped_out, dataset]
        tally = _Tally()
        _Pass(config, decon, tally, per_source, kept_out, dropped_out, dataset).run(spill)
        spill.close()
        kept_out.finish()
        dropped_out.finish()
        report = _report(config, tally, by_name, time.perf_counter() - started)
        write_json_atomic(out / "report.json", report)
        card = dataset_card(name=out.name, report=report, sources=dict(tally.teachers), checks=sorted(tally.kept_checks),
                            decontaminated_against=config.decontaminate, inputs=by_name)
        dataset.finish(card)
        _plots(out, tally.kept_len, tally.drop_len, tally.pass_rates)
        write_manifest(out, "filter", config=config, inputs={"traces": config.traces},
                       outputs={"kept": "kept.jsonl", "dropped": "dropped.jsonl", "dataset": "dataset"},
                       metrics={k: report[k] for k in ("input", "kept", "dropped", "mean_pass_rate")})
        finished = True
        if config.push_to_hub:
            report["pushed_to"] = push_dataset(out / "dataset", config.push_to_hub)
        return report
    finally:
        for output in outputs:
            output.close()
        shutil.rmtree(work, ignore_errors=True)
        if made_out and not finished:
            shutil.rmtree(out, ignore_errors=True)


def _report(config: FilterConfig, tally: _Tally, sources: dict[str, dict], elapsed: float) -> dict:
    pass_rates = tally.pass_rates
    return {
        "input": tally.input, "kept": tally.kept, "dropped": tally.dropped, "prompts": len(pass_rates),
        "prompts_with_a_kept_trace": tally.prompts_with_a_kept_trace, "kept_unverified": tally.kept_unverified,
        "dropped_by_first_reason": dict(tally.reasons), "failing_by_check": dict(tally.failing),
        "mean_pass_rate": sum(pass_rates.values()) / len(pass_rates),
        "pass_rates": pass_rates, "seconds": round(elapsed, 3), "traces_per_s": round(tally.input / elapsed, 1),
        "grading": {"workers": config.workers or available_cpus(), "seconds": round(tally.grading_s, 3),
                    "cpu_seconds": round(tally.grading_cpu_s, 3), "timed_out": tally.timed_out},
        "sources": sources, **({"shard": config.shard} if config.shard else {}),
    }


def _spill_sources(config: FilterConfig, sources, spill: SortedSpill, refs: dict[str, str]) -> list[dict]:
    """Read every source a record at a time into the spill, keyed by (problem, sample, source number); returns
    each source's counts, in order (kept and dropped filled in by the grading pass)."""
    reader = DatasetReader(config.trace_format)  # one for all sources: a problem's samples numbered on across them
    shard = parse_shard(config.shard) if config.shard else None
    per_source: list[dict] = []
    sandbox_checked = False
    for number, source in enumerate(sources):
        counts = {"input": 0, "kept": 0, "dropped": 0}
        per_source.append(counts)
        if source.cap is not None:
            counts["cap"] = source.cap
        if source.weight is not None:
            counts["weight"] = source.weight
        for record in source_records(source, reader):
            if shard is not None and not in_shard(record.problem, shard):
                continue
            if record.reference_answer is None and record.problem_id in refs:
                record.reference_answer = refs[record.problem_id]
            if not sandbox_checked and record.reference_answer is not None and is_code_reference(str(record.reference_answer)):
                require_sandbox(config.sandbox)  # a code problem's tests need a sandbox that runs: before any grading
                sandbox_checked = True
            counts["input"] += 1
            spill.add((record.problem_id, record.sample_index, number), record.model_dump_json())
    return per_source


def _batches(spill: SortedSpill) -> Iterator[list[list[tuple[int, TraceRecord]]]]:
    """Whole problems, a batch at a time: lists of (source number, record), a problem's samples in order."""
    batch, traces, chars = [], 0, 0
    for _, items in groupby(spill.merged(), key=lambda item: item.key[0]):
        group = []
        for item in items:
            record = TraceRecord.model_validate_json(item.payload)
            group.append((item.key[2], record))
            chars += len(item.payload)
        batch.append(group)
        traces += len(group)
        if traces >= BATCH_TRACES or chars >= BATCH_CHARS:
            yield batch
            batch, traces, chars = [], 0, 0
    if batch:
        yield batch


class _Pass:
    """The one pass over the merged traces: the checks that need no grading, then a batch's grading (in a thread,
    while the next batch is read), the per-problem steps and the outputs, a batch at a time."""

    def __init__(self, config: FilterConfig, decon: Optional[Decontaminator], tally: _Tally, per_source: list[dict],
                 kept_out: _Lines, dropped_out: _Lines, dataset: SFTDatasetWriter):
        self.config, self.decon, self.tally, self.per_source = config, decon, tally, per_source
        self.kept_out, self.dropped_out, self.dataset = kept_out, dropped_out, dataset
        self.seen_prompts: dict[bytes, str] = {}  # a hash of each problem's text -> the first problem id with it
        self.advance = lambda n: None

    def run(self, spill: SortedSpill) -> None:
        with GradingPool(self.config.workers) as pool, ThreadPoolExecutor(1) as grader, \
                count_progress("filter", spill.count) as self.advance:
            pending = None
            for batch in _batches(spill):
                future = grader.submit(self.grade, self.prechecks(batch), pool)  # graded while the next batch is read
                if pending is not None:
                    self.finish(*pending)
                pending = (batch, future)
            if pending is not None:
                self.finish(*pending)

    def grade(self, records: list[TraceRecord], pool: GradingPool):
        at = time.perf_counter()
        graded, cpu = run_checks(records, self.config, pool)
        return graded, cpu, time.perf_counter() - at

    def prechecks(self, batch) -> list[TraceRecord]:
        """The checks that need no grading: decontamination, duplicate prompts, duplicate traces (in a problem)."""
        records = []
        for group in batch:
            contamination: dict[str, Optional[str]] = {}
            seen_traces: dict[bytes, int] = {}
            for _, r in group:
                r.checks = {}
                if self.decon is not None:
                    if r.problem not in contamination:
                        contamination[r.problem] = self.decon.match(r.problem)
                    hit = contamination[r.problem]
                    r.checks["decontamination"] = CheckResult(
                        passed=hit is None, reason=f"shares a {self.config.ngram}-gram with {hit}" if hit else "clean")
                first = self.seen_prompts.setdefault(_hash(_normalized(r.problem)), r.problem_id)
                r.checks["duplicate_prompt"] = CheckResult(
                    passed=first == r.problem_id, reason=f"same problem as {first}" if first != r.problem_id else "unique")
                # symbols count: `a + b` is not `a - b`; the first of identical traces is kept, whatever source it is from
                key = _hash(" ".join(r.completion.lower().split()))
                if key in seen_traces:
                    r.checks["duplicate_trace"] = CheckResult(passed=False, reason=f"same trace as sample {seen_traces[key]}")
                else:
                    seen_traces[key] = r.sample_index
                    r.checks["duplicate_trace"] = CheckResult(passed=True, reason="unique")
                records.append(r)
        return records

    def finish(self, batch, future) -> None:
        graded, cpu, seconds = future.result()
        self.tally.grading_s += seconds
        self.tally.grading_cpu_s += cpu
        verdicts = iter(graded)
        for group in batch:
            for _, r in group:
                r.checks.update(next(verdicts))
            _per_problem(self.config, group, self.tally)
            for number, r in group:
                self.count(r, self.per_source[number])
            self.advance(len(group))

    def count(self, r: TraceRecord, counts: dict) -> None:
        tally = self.tally
        tally.input += 1
        tally.teachers[r.teacher] += 1
        length = r.completion_tokens or len(r.completion.split())
        for c, v in r.checks.items():
            if not v.passed:
                tally.failing[c] += 1
            if "(hard limit)" in v.reason:
                tally.timed_out += 1
        if r.kept:
            tally.kept += 1
            counts["kept"] += 1
            tally.kept_unverified += r.checks["correctness"].reason == UNVERIFIED
            tally.kept_checks.update(r.checks)
            tally.kept_len.append(length)
            self.kept_out.write(r)
            self.dataset.add(r)
        else:
            tally.dropped += 1
            counts["dropped"] += 1
            tally.reasons[next(c for c in CHECK_ORDER if c in r.checks and not r.checks[c].passed)] += 1
            tally.drop_len.append(length)
            self.dropped_out.write(r)


def _per_problem(config: FilterConfig, group: list[tuple[int, TraceRecord]], tally: _Tally) -> None:
    """The pass rate of one problem's samples, its band, and keep-per-prompt."""
    records = [r for _, r in group]
    rate = sum(r.checks["correctness"].passed for r in records) / len(records)
    pid = records[0].problem_id
    tally.pass_rates[pid] = rate
    in_band = config.min_pass_rate <= rate <= config.max_pass_rate
    kept_here = 0
    for r in records:  # in sample order
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
    tally.prompts_with_a_kept_trace += any(r.kept for r in records)


def _plots(out: Path, kept_len: array, drop_len: array, pass_rates: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].hist(list(pass_rates.values()), bins=11, range=(0, 1), color="#4477aa")
    axes[0].set(title="Pass rate per prompt", xlabel="share of samples correct", ylabel="prompts")
    axes[1].hist([kept_len, drop_len], bins=20, label=["kept", "dropped"], color=["#228833", "#cc6677"], stacked=True)
    axes[1].set(title="Trace length", xlabel="completion tokens", ylabel="traces")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out / "report.png", dpi=100)
    plt.close(fig)
