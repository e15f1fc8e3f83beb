"""The trace record: what flows from `teacher/` (generate, filter) to `distill/` (train, eval).

One record is one sampled completion of one problem. ``generate`` writes the teacher's side;
``filter`` fills ``checks`` (one verdict per check) and ``kept``. Stored as JSONL (one record a line,
appended crash-safe by ``generate``) or Parquet (the same columns; nested fields as JSON strings).

=================  ==========================================================================
field              meaning
=================  ==========================================================================
problem_id         the prompt's id in its source (stable across runs: the resume key)
problem            the problem text, without the prompt suffix
reference_answer   the reference final answer, when known
sample_index       0..k-1: which of the k samples of this problem
teacher            teacher name, URL, hub id or file
backend            openai | vllm | transformers | llamacpp
sampling           temperature, top_p, max_tokens, seed, prompt_suffix, ...
prompt             the user message exactly as sent
completion         raw generated text (for a forced ``<think>\\n`` prompt: without it)
reasoning, answer  the two parts, from :func:`r1_distill.reasoning.split_reasoning`
finish_reason      "stop" | "length" | None
prompt_tokens      token counts as reported by the backend (None when unknown)
completion_tokens
reasoning_tokens
latency_s          wall time of the request
created_at         ISO-8601 UTC time the record was written
checks             {check name: {"passed": bool, "reason": str}}, filled by ``filter``
kept               True/False after ``filter``, None before
meta               anything else (endpoint, request id, ...)
=================  ==========================================================================
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from pydantic import BaseModel, ConfigDict, Field

from .errors import UserError
from .files import append_lines, atomic_path, read_jsonl
from .reasoning import split_reasoning

TRACE_SHARD_GLOB = "traces-*.jsonl"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class CheckResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    passed: bool
    reason: str = ""


class TraceRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    problem_id: str
    problem: str
    reference_answer: Optional[str] = None
    sample_index: int = Field(ge=0)
    teacher: str
    backend: str
    sampling: dict[str, Any] = Field(default_factory=dict)
    prompt: str = ""
    completion: str
    reasoning: str
    answer: str
    finish_reason: Optional[str] = None
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    reasoning_tokens: Optional[int] = None
    latency_s: Optional[float] = None
    created_at: str = Field(default_factory=now_iso)
    checks: dict[str, CheckResult] = Field(default_factory=dict)
    kept: Optional[bool] = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        return (self.problem_id, self.sample_index)

    @classmethod
    def from_completion(cls, *, completion: str, reasoning: str | None = None, **fields) -> "TraceRecord":
        """Build a record from raw text; when the backend returned the reasoning apart (an API's
        ``reasoning_content``), pass it and `completion` is the answer text."""
        if reasoning is not None:
            reasoning, answer = reasoning.strip(), completion.strip()
            raw = f"{reasoning}\n</think>\n\n{answer}"
            return cls(completion=raw, reasoning=reasoning, answer=answer, **fields)
        parts = split_reasoning(completion)
        return cls(completion=completion, reasoning=parts.reasoning, answer=parts.answer, **fields)


def _record_files(path: Path) -> list[Path]:
    if path.is_dir():
        # generate's shards, else every JSONL file; and every Parquet file (a public set's shards beside ours)
        shards = sorted(path.glob(TRACE_SHARD_GLOB)) or sorted(path.glob("*.jsonl"))
        return shards + sorted(path.glob("*.parquet"))
    if path.is_file():
        return [path]
    raise UserError(f"no traces at {path}: pass a folder written by `r1-distill generate` or a .jsonl/.parquet file")


def iter_traces(path: str | Path, format: Optional[str] = None) -> Iterator[TraceRecord]:
    """The records of a file or folder: ours, or rows of a public trace set (r1_distill.trace_formats), the
    format detected per file from its first row unless `format` names one."""
    from .trace_formats import DatasetReader

    return iter_records_with(Path(path), DatasetReader(format))


def iter_records_with(path: Path, datasets) -> Iterator[TraceRecord]:
    """The records of a file or folder, public sets read by `datasets` (a trace_formats.DatasetReader: one
    reader numbers a problem's samples on across everything it reads)."""
    for file in _record_files(path):
        if not datasets.reads_own(file):
            yield from datasets.read(file)
        elif file.suffix == ".parquet":
            yield from _read_parquet(file)
        else:
            for number, row in enumerate(read_jsonl(file), start=1):
                try:
                    yield TraceRecord.model_validate(row)
                except Exception as exc:  # pydantic's message names the field
                    raise UserError(f"{file}: record {number} is not a trace record: {exc}") from None


def read_traces(path: str | Path, format: Optional[str] = None) -> list[TraceRecord]:
    return list(iter_traces(path, format=format))


def append_traces(path: str | Path, records: Iterable[TraceRecord]) -> None:
    append_lines(path, [r.model_dump_json() for r in records])


_NESTED = ("sampling", "checks", "meta")


def write_traces(path: str | Path, records: Iterable[TraceRecord]) -> Path:
    """Write all records at once, atomically, as JSONL or Parquet by the file's suffix."""
    path = Path(path)
    rows = [r.model_dump(mode="json") for r in records]
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            flat = [{k: (json.dumps(v) if k in _NESTED else v) for k, v in row.items()} for row in rows]
            schema = _parquet_schema(pa)
            pq.write_table(pa.Table.from_pylist(flat, schema=schema), tmp)
        else:
            with open(tmp, "w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def _parquet_schema(pa):
    types = {"sample_index": pa.int64(), "prompt_tokens": pa.int64(), "completion_tokens": pa.int64(),
             "reasoning_tokens": pa.int64(), "latency_s": pa.float64(), "kept": pa.bool_()}
    return pa.schema([(name, types.get(name, pa.string())) for name in TraceRecord.model_fields])


def _read_parquet(file: Path) -> Iterator[TraceRecord]:
    import pyarrow.parquet as pq

    for row in (row for batch in pq.ParquetFile(file).iter_batches(batch_size=256) for row in batch.to_pylist()):
        for key in _NESTED:
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
        yield TraceRecord.model_validate(row)
