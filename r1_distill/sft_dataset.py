"""Kept traces as a standard dataset: Parquet shards of conversational `messages` rows, the shape TRL's
SFTTrainer, axolotl and LLaMA-Factory read, with a dataset card beside them.

Each row: `messages` (the user's problem; the assistant's turn with the thinking inline in `<think>...</think>`
before the answer, as R1 writes it, and the thinking again as `reasoning_content` for templates that take it
apart), and where it came from (`problem_id`, `sample_index`, `source`, `reference_answer`).
`datasets.load_dataset("parquet", data_dir=FOLDER)` or `load_dataset(FOLDER)` reads it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable

from .traces import TraceRecord

ROWS_PER_SHARD = 10_000


def messages_row(record: TraceRecord) -> dict:
    user = record.prompt or record.problem
    assistant = f"<think>\n{record.reasoning}\n</think>\n\n{record.answer}"
    return {"messages": [{"role": "user", "content": user, "reasoning_content": None},
                         {"role": "assistant", "content": assistant, "reasoning_content": record.reasoning}],
            "problem_id": record.problem_id, "sample_index": record.sample_index, "source": record.teacher,
            "reference_answer": record.reference_answer}


def write_sft_dataset(folder: Path, records: Iterable[TraceRecord], card: str) -> int:
    """Write the shards and README.md into `folder` (replaced whole, never half-written); returns the rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    staging = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "data").mkdir(parents=True)
    rows, shard, count = [], 0, 0

    def flush():
        nonlocal rows, shard
        if rows:
            pq.write_table(pa.Table.from_pylist(rows), staging / "data" / f"train-{shard:05d}.parquet")
            shard, rows = shard + 1, []

    for record in records:
        rows.append(messages_row(record))
        count += 1
        if len(rows) >= ROWS_PER_SHARD:
            flush()
    flush()
    (staging / "README.md").write_text(card, encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return count


def dataset_card(*, name: str, report: dict, sources: dict[str, int], checks: list[str],
                 decontaminated_against: list[str]) -> str:
    """The card: what is in the set, where it came from, what was dropped and why, and how to load it."""
    funnel = "\n".join(f"| {reason} | {n:,} |" for reason, n in sorted(report["dropped_by_first_reason"].items(),
                                                                          key=lambda kv: -kv[1])) or "| (none) | 0 |"
    source_rows = "\n".join(f"| {source} | {n:,} |" for source, n in sorted(sources.items()))
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
        f"## Checks\n\nEvery trace passed: {', '.join(f'`{c}`' for c in checks)}. "
        f"Decontaminated against {against}. {report.get('kept_unverified', 0):,} kept traces come from sets without "
        "reference answers and were not checked for correctness.\n\n"
        f"## Dropped, by first failing check\n\n| check | traces |\n|---|---|\n{funnel}\n\n"
        "Every verdict of every trace, kept and dropped, is in `kept.jsonl` and `dropped.jsonl` beside this folder; "
        "the counts in `report.json`.\n")
