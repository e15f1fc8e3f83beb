"""Prompt sets: JSONL, Parquet, or a `datasets` hub id, with field mapping. Checked up front."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from r1_distill.errors import UserError
from r1_distill.files import read_jsonl


CODE_PROMPT_SUFFIX = ("Think it through, then give your complete solution in Python 3 as one ```python code block "
                      "at the end of your answer.")


@dataclass(frozen=True)
class Prompt:
    id: str
    problem: str
    answer: Optional[str]  # a final answer, or for a code problem its tests (r1_distill.grading.code)
    kind: str = "math"  # math | code


def _rows(source: str, split: str) -> list[dict]:
    path = Path(source)
    if path.is_file():
        try:
            if path.suffix == ".parquet":
                import pyarrow.parquet as pq

                return pq.read_table(path).to_pylist()
            if path.suffix in (".jsonl", ".json"):
                return list(read_jsonl(path))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read prompt file {source}: {exc}") from None
        raise UserError(f"prompt file {source} is neither .jsonl nor .parquet")
    if path.exists() or source.startswith((".", "/", "~")) or source.endswith((".jsonl", ".parquet", ".json")):
        raise UserError(f"prompt file {source} does not exist")
    try:
        from datasets import load_dataset

        return list(load_dataset(source, split=split))
    except Exception as exc:
        raise UserError(f"cannot load dataset {source!r} (split {split!r}) from the hub: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200]}") from None


def load_prompts(source: str, *, problem_field: str = "problem", answer_field: str = "answer", id_field: str = "id",
                 split: str = "train", limit: Optional[int] = None, tests_field: str = "tests") -> list[Prompt]:
    """A record with a `tests` field is a code problem: its reference is its tests (stdin/stdout cases,
    asserts, or HumanEval's check function; see r1_distill.grading.code)."""
    rows = _rows(source, split)
    if not rows:
        raise UserError(f"prompt set {source} is empty")
    prompts, seen = [], set()
    for number, row in enumerate(rows[:limit] if limit else rows, start=1):
        if problem_field not in row or row[problem_field] in (None, ""):
            fields = ", ".join(sorted(row)) or "none"
            raise UserError(f"{source}: record {number} has no field '{problem_field}' (fields: {fields}); "
                            "pass --problem-field NAME")
        pid = str(row.get(id_field, number - 1))
        if pid in seen:
            raise UserError(f"{source}: id {pid!r} appears twice; ids must be unique (or pass --id-field)")
        seen.add(pid)
        if row.get(tests_field) not in (None, "", []):
            from r1_distill.grading.code import code_reference

            try:
                reference = code_reference(row[tests_field])
            except ValueError as exc:
                raise UserError(f"{source}: record {number} (id {pid}): {exc}") from None
            prompts.append(Prompt(id=pid, problem=str(row[problem_field]), answer=reference, kind="code"))
            continue
        answer = row.get(answer_field)
        prompts.append(Prompt(id=pid, problem=str(row[problem_field]), answer=None if answer is None else str(answer)))
    return prompts
