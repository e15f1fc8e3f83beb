"""Named benchmarks (`benchmarks:` in models.yaml): their rows read, turned into prompts in the form of the
harness people compare with, and their references written for the checks of `r1_distill.grading`.

The prompts (`PROMPTS`), each the whole user turn (no other instruction is added):

* ``lighteval-math`` (aime24, aime25, math500): the MATH_QUERY_TEMPLATE of open-r1's lighteval tasks, which
  asks for "Therefore, the final answer is: $\\boxed{ANSWER}$"; graded by math-verify on the answer after
  the thinking (lighteval's extractive match is built on the same math-verify).
* ``r1``: DeepSeek's own, the problem then "Please reason step by step, and put your final answer within
  \\boxed{}." (the sampling default of `generate`).
* ``lighteval-gpqa`` (gpqa-diamond): lighteval's `gpqa_instruct` (from OpenAI's simple-evals), the
  choices shuffled with a recorded seed; graded by `grading.choice` (lighteval's letter extraction, the
  thinking removed first).
* ``lighteval-lcb`` (lcb): lighteval's `lcb_codegeneration_prompt_fn` (LiveCodeBench's own wording,
  with the starter code for functional problems); graded by `grading.livecodebench` in the code sandbox.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import UserError
from .registry import Benchmark, Registry

LIGHTEVAL_MATH = ("Solve the following math problem efficiently and clearly.  The last line of your response should be "
                  "of the following format: 'Therefore, the final answer is: $\\boxed{{ANSWER}}$. I hope it is correct' "
                  "(without quotes) where ANSWER is just the final number or expression that solves the problem. "
                  "Think step by step before answering.\n\n{problem}")
R1_MATH = "{problem}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
LIGHTEVAL_GPQA = ("Answer the following multiple choice question. The last line of your response should be of the "
                  "following format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think step by "
                  "step before answering.\n\n{problem}\n\nA) {A}\nB) {B}\nC) {C}\nD) {D}")
LCB_HEAD = ("You will be given a question (problem specification) and will generate a correct Python program that "
            "matches the specification and passes all tests.\n\nQuestion: {problem}\n\n")
LCB_STARTER = ("You will use the following starter code to write the solution to the problem and enclose your code "
               "within delimiters.\n```python\n{starter_code}\n```\n\n")
LCB_STDIN = ("Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on the "
             "sample inputs). Enclose your code within delimiters as follows. Ensure that when the python program "
             "runs, it reads the inputs, runs the algorithm and writes output to STDOUT.\n```python\n# YOUR CODE HERE\n"
             "```\n\n")
PROMPTS = {"lighteval-math": LIGHTEVAL_MATH, "r1": R1_MATH, "lighteval-gpqa": LIGHTEVAL_GPQA, "lighteval-lcb": LCB_HEAD}
GPQA_WRONG = ("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")


@dataclass(frozen=True)
class BenchRun:
    name: str
    bench: Benchmark
    source: str  # where its rows are read from: the entry's dataset, or the file given as NAME=FILE


def named_benches(spec: str, registry: Registry) -> Optional[list[BenchRun]]:
    """`--bench` as a list of named benchmarks (`aime24,math500`, a name may be given a local copy of its
    rows as `aime24=FILE`), or None when it is one file or hub dataset (the plain evaluation)."""
    if Path(spec).exists():
        return None
    items = [s.strip() for s in spec.split(",") if s.strip()]
    names = [item.split("=", 1)[0] for item in items]
    if not any(n in registry.benchmarks for n in names):
        return None
    runs = []
    for item, name in zip(items, names):
        bench = registry.benchmark(name)
        source = item.split("=", 1)[1] if "=" in item else bench.dataset
        if "=" not in item and registry.source and not _is_hub_id(source):
            source = str(Path(registry.source).parent / source)
        runs.append(BenchRun(name, bench, source))
    if len({r.name for r in runs}) != len(runs):
        raise UserError(f"--bench {spec} names a benchmark twice")
    return runs


def _is_hub_id(source: str) -> bool:
    return not Path(source).suffix and source.count("/") == 1 and not source.startswith((".", "/", "~"))


def read_rows(source: str, subset: Optional[str], split: str) -> list[dict]:
    path = Path(source)
    if path.is_file():
        try:
            if path.suffix == ".parquet":
                import pyarrow.parquet as pq

                return pq.read_table(path).to_pylist()
            from .files import read_jsonl

            return list(read_jsonl(path))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read benchmark file {source}: {exc}") from None
    if not _is_hub_id(source):
        raise UserError(f"benchmark file {source} does not exist")
    try:
        from datasets import load_dataset

        return list(load_dataset(source, subset, split=split))
    except Exception as exc:
        raise UserError(f"cannot load benchmark {source!r} ({subset or 'default'}, split {split!r}) from the hub: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}") from None


def _template(bench: Benchmark) -> str:
    template = PROMPTS.get(bench.prompt, bench.prompt)
    if "{problem}" not in template:
        raise UserError(f"benchmark prompt {bench.prompt!r} is neither one of {', '.join(PROMPTS)} nor a template "
                        "with {problem}")
    return template


def _math_row(bench: Benchmark, row: dict, number: int) -> dict:
    fields = {"id": "id", "problem": "problem", "answer": "answer", **bench.fields}
    missing = [fields[k] for k in ("problem", "answer") if row.get(fields[k]) in (None, "")]
    if missing:
        raise UserError(f"benchmark row {number} has no {', '.join(missing)} (its fields: {', '.join(sorted(row))})")
    return {"id": str(row.get(fields["id"], number)), "problem": _template(bench).format(problem=row[fields["problem"]]),
            "answer": str(row[fields["answer"]])}


def _choice_row(bench: Benchmark, row: dict, number: int) -> dict:
    from .grading.choice import choice_reference

    missing = [k for k in ("Question", "Correct Answer", *GPQA_WRONG) if row.get(k) in (None, "")]
    if missing:
        raise UserError(f"GPQA row {number} has no {', '.join(missing)} (its fields: {', '.join(sorted(row))})")
    pid = str(row.get(bench.fields.get("id", "Record ID")) or number)
    choices = [row[k] for k in GPQA_WRONG]
    gold = random.Random(f"{bench.shuffle_seed}:{pid}").randint(0, 3)  # as lighteval: the right one inserted at a draw
    choices.insert(gold, row["Correct Answer"])
    letter = "ABCD"[gold]
    problem = _template(bench).format(problem=row["Question"], **dict(zip("ABCD", choices)))
    return {"id": pid, "problem": problem, "answer": choice_reference(letter), "order": choices, "right": letter}


def _lcb_row(bench: Benchmark, row: dict, number: int, tests_dir: Optional[Path] = None) -> dict:
    from .grading.livecodebench import row_reference

    try:
        reference = row_reference(row, store=tests_dir)
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"LiveCodeBench row {number} ({row.get('question_id')}): {exc}") from None
    prompt = LCB_HEAD.format(problem=row["question_content"])
    starter = row.get("starter_code") or ""
    prompt += LCB_STARTER.format(starter_code=starter) if starter else LCB_STDIN
    return {"id": str(row.get("question_id") or number), "problem": prompt, "answer": reference,
            "contest_date": str(row.get("contest_date", ""))}


def in_window(date: str, since: Optional[str], until: Optional[str]) -> bool:
    day = str(date)[:10]
    return (not since or day >= since) and (not until or day <= until)


def prepare(run: BenchRun, *, since: Optional[str] = None, until: Optional[str] = None,
            tests_dir: Optional[Path] = None) -> list[dict]:
    """The bench's problems as prompt records (id, problem: the whole prompt, answer: the reference). Large
    code tests are kept in files under `tests_dir` (the references point to them)."""
    bench = run.bench
    rows = read_rows(run.source, bench.subset, bench.split)
    if bench.format == "livecodebench":
        window = bench.window
        since = since or (window.since if window else None)
        until = until or (window.until if window else None)
        rows = [r for r in rows if in_window(r.get("contest_date", ""), since, until)]
        if not rows:
            raise UserError(f"{run.name}: no problem of {run.source} has a contest_date in {since} .. {until} "
                            "(--since / --until)")
    if bench.format == "livecodebench":
        records = [_lcb_row(bench, row, number, tests_dir) for number, row in enumerate(rows)]
    else:
        make = _math_row if bench.format == "math" else _choice_row
        records = [make(bench, row, number) for number, row in enumerate(rows)]
    if not records:
        raise UserError(f"{run.name}: {run.source} has no problems")
    return records


def write_prepared(records: list[dict], folder: Path) -> Path:
    """The records as a prompt file named by its content, so that a run with other problems (another seed,
    window or source) is told apart by `eval`'s run identity rather than overwriting them."""
    import hashlib

    from .files import write_text_atomic

    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    path = folder / f"bench-{hashlib.sha256(text.encode()).hexdigest()[:12]}.jsonl"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
    return path
