"""Kept traces as a standard dataset: Parquet shards of conversational `messages` rows, the shape TRL's
SFTTrainer, axolotl and LLaMA-Factory read, with a dataset card beside them.

Each row: `messages` (the user's problem; the assistant's turn with the thinking inline in `<think>...</think>`
before the answer, as R1 writes it, and the thinking again as `reasoning_content` for templates that take it
apart), and where it came from (`problem_id`, `sample_index`, `source`, `reference_answer`).
`datasets.load_dataset("parquet", data_dir=FOLDER)` or `load_dataset(FOLDER)` reads it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable, Optional

from .traces import TraceRecord

ROWS_PER_SHARD = 10_000


def messages_row(record: TraceRecord) -> dict:
    user = record.prompt or record.problem
    assistant = f"<think>\n{record.reasoning}\n</think>\n\n{record.answer}"
    return {"messages": [{"role": "user", "content": user, "reasoning_content": None},
                         {"role": "assistant", "content": assistant, "reasoning_content": record.reasoning}],
            "problem_id": record.problem_id, "sample_index": record.sample_index, "source": record.teacher,
            "reference_answer": record.reference_answer}


ROW_GROUP_BYTES = 32 << 20  # rows buffered before they are written: a shard is written a row group at a time


def _schema():
    import pyarrow as pa

    turn = pa.struct([("role", pa.string()), ("content", pa.string()), ("reasoning_content", pa.string())])
    return pa.schema([("messages", pa.list_(turn)), ("problem_id", pa.string()), ("sample_index", pa.int64()),
                      ("source", pa.string()), ("reference_answer", pa.string())])


class SFTDatasetWriter:
    """Writes the dataset a record at a time into a staging folder beside `folder`, holding at most one row
    group in memory; `finish(card)` puts the card in and moves the folder into place whole (a run that
    fails leaves the old folder, if any, untouched). `close()` without `finish` drops the staging folder."""

    def __init__(self, folder: Path, rows_per_shard: int = ROWS_PER_SHARD):
        self.folder = Path(folder)
        self.staging = self.folder.with_name(f".{self.folder.name}.partial")
        shutil.rmtree(self.staging, ignore_errors=True)
        (self.staging / "data").mkdir(parents=True)
        self.rows_per_shard = rows_per_shard
        self.count = 0
        self._rows: list[dict] = []
        self._held = 0
        self._shard = -1
        self._in_shard = 0
        self._writer = None

    def add(self, record: TraceRecord) -> None:
        row = messages_row(record)
        self._rows.append(row)
        self._held += len(row["messages"][1]["content"]) * 2 + len(row["messages"][0]["content"])
        self.count += 1
        if self._held >= ROW_GROUP_BYTES or self._in_shard + len(self._rows) >= self.rows_per_shard:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._rows:
            return
        if self._writer is None:
            self._shard += 1
            self._writer = pq.ParquetWriter(self.staging / "data" / f"train-{self._shard:05d}.parquet", _schema())
        self._writer.write_table(pa.Table.from_pylist(self._rows, schema=_schema()))
        self._in_shard += len(self._rows)
        self._rows, self._held = [], 0
        if self._in_shard >= self.rows_per_shard:
            self._writer.close()
            self._writer, self._in_shard = None, 0

    def finish(self, card: str) -> int:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        (self.staging / "README.md").write_text(card, encoding="utf-8")
        shutil.rmtree(self.folder, ignore_errors=True)
        self.staging.rename(self.folder)
        return self.count

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        shutil.rmtree(self.staging, ignore_errors=True)


def write_sft_dataset(folder: Path, records: Iterable[TraceRecord], card: str) -> int:
    """Write the shards and README.md into `folder` (replaced whole, never half-written); returns the rows."""
    writer = SFTDatasetWriter(folder)
    try:
        for record in records:
            writer.add(record)
        return writer.finish(card)
    finally:
        writer.close()


def dataset_card(*, name: str, report: dict, sources: dict[str, int], checks: list[str],
                 decontaminated_against: list[str], inputs: Optional[dict[str, dict]] = None) -> str:
    """The card: what is in the set, where it came from, what was dropped and why, and how to load it."""
    funnel = "\n".join(f"| {reason} | {n:,} |" for reason, n in sorted(report["dropped_by_first_reason"].items(),
                                                                          key=lambda kv: -kv[1])) or "| (none) | 0 |"
    source_rows = "\n".join(f"| {source} | {n:,} |" for source, n in sorted(sources.items()))
    input_rows = "\n".join(
        f"| `{spec}` | {c.get('cap', '')} | {c.get('weight', '')} | {c['input']:,} | {c['kept']:,} | {c['dropped']:,} |"
        for spec, c in (inputs or {}).items())
    against = ", ".join(f"`{Path(f).name}`" for f in decontaminated_against) or "nothing (no --decontaminate given)"
    return (
        "---\n"
        "configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/*.parquet\n"
        "task_categories: [text-generation]\ntags: [reasoning, r1-distill, chain-of-thought]\n---\n\n"
        f"# {name}\n\n"
        f"{report['kept']:,} reasoning traces kept by `r1-distill filter` from {report['input']:,} "
        f"({report['prompts_with_a_kept_trace']:,} of {report['prompts']:,} problems keep at least one).\n\n"
        "Each row is a conversation in `messages`: the problem, then the assistant's turn with its thinking "
        "inline in `<think>...</think>` before the answer (also apart, in `reasoning_content`).\n\n"
        "```python\nfrom datasets import load_dataset\nds = load_dataset(\"parquet\", data_dir=\"PATH\", split=\"train\")\n```\n\n"
        f"## Sources\n\n| source | traces in |\n|---|---|\n{source_rows}\n\n"
        + (f"Read from (duplicates found across them):\n\n| input | cap | weight | traces in | kept | dropped |\n"
           f"|---|---|---|---|---|---|\n{input_rows}\n\n" if inputs else "") +
        f"## Checks\n\nEvery trace passed: {', '.join(f'`{c}`' for c in checks)}. "
        f"Decontaminated against {against}. {report.get('kept_unverified', 0):,} kept traces come from sets without "
        "reference answers and were not checked for correctness.\n\n"
        f"## Dropped, by first failing check\n\n| check | traces |\n|---|---|\n{funnel}\n\n"
        "Every verdict of every trace, kept and dropped, is in `kept.jsonl` and `dropped.jsonl` beside this folder; "
        "the counts in `report.json`.\n")
