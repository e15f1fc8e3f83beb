"""`filter` streams: traces spilled to many sorted runs on disk and graded a few problems at a time give the same
kept.jsonl, dropped.jsonl, dataset and report as one batch held in memory, in (problem, sample) order, and
leave nothing behind but the outputs."""

import json

import pyarrow.parquet as pq

import r1_distill.spill as spill
import r1_distill.teacher.filter as filter_module
from r1_distill.teacher.filter import FilterConfig, filter_traces
from r1_distill.traces import read_traces


def _think(n, answer):
    reasoning = (f"We need {n} times three. Adding {n} three times gives {3 * n}. "
                 f"Checking with another grouping, {n} plus {2 * n} is {3 * n} as well.")
    return f"<think>\n{reasoning}\n</think>\n\nThe answer is $\\boxed{{{answer}}}$."


def openr1_row(n):
    problem = f"What is {n} times three?"
    # three generations: right, wrong, and the right one again (a duplicate trace)
    generations = [_think(n, 3 * n), _think(n, 3 * n + 1), _think(n, 3 * n)]
    return {"problem": problem, "solution": f"$\\boxed{{{3 * n}}}$", "answer": str(3 * n), "problem_type": "Algebra",
            "question_type": "math-word-problem", "source": "olympiads", "uuid": f"u-{n}",
            "is_reasoning_complete": [True] * 3, "generations": generations,
            "correctness_math_verify": [True, False, True], "correctness_llama": None, "finish_reasons": ["stop"] * 3,
            "correctness_count": 2, "messages": [{"content": problem, "role": "user"},
                                                 {"content": generations[0], "role": "assistant"}]}


def s1k_row(n):
    reasoning = f"Three times {n}: {n} + {n} + {n} = {3 * n}. So the product is {3 * n}, checked by adding again."
    return {"solution": f"Adding gives $\\boxed{{{3 * n}}}$.", "question": f"Compute three times {n}.", "cot_type": "math",
            "source_type": "AI-MO/NuminaMath-CoT/olympiads", "metadata": "{}", "gemini_thinking_trajectory": reasoning,
            "gemini_attempt": f"$\\boxed{{{3 * n}}}$", "deepseek_thinking_trajectory": reasoning,
            "deepseek_attempt": f"The answer is $\\boxed{{{3 * n}}}$.", "gemini_grade": "Yes", "gemini_grade_reason": "",
            "deepseek_grade": "Yes", "deepseek_grade_reason": ""}


def _sets(folder):
    import pyarrow as pa

    folder.mkdir()
    # problems in no particular order, split across a Parquet and a JSONL file: the output is sorted anyway
    order = [7, 2, 11, 0, 5, 9, 1, 12, 3, 8, 4, 10, 6]
    pq.write_table(pa.Table.from_pylist([openr1_row(n) for n in order]), folder / "openr1.parquet")
    (folder / "s1k.jsonl").write_text("".join(json.dumps(s1k_row(n)) + "\n" for n in order))
    return folder


def test_spilled_and_batched_filter_equals_the_in_memory_one(tmp_path, monkeypatch):
    sets = _sets(tmp_path / "sets")
    whole = filter_traces(FilterConfig(traces=str(sets), out=str(tmp_path / "whole"), workers=1))

    runs = []
    real_write_run = spill.SortedSpill._write_run

    def counting_write_run(self):
        runs.append(len(self._buffer))
        real_write_run(self)

    monkeypatch.setattr(spill.SortedSpill, "_write_run", counting_write_run)
    monkeypatch.setattr(filter_module, "BATCH_TRACES", 4)  # a few problems a batch
    streamed = filter_traces(FilterConfig(traces=str(sets), out=str(tmp_path / "streamed"), workers=1, spill_bytes=3000))
    assert len([n for n in runs if n]) >= 10  # 52 traces of about 1 KB in runs of 3 KB

    def rows(folder, name):  # a public set's rows get their created_at when read
        return [{**json.loads(line), "created_at": None} for line in (tmp_path / folder / name).read_text().splitlines()]

    for name in ("kept.jsonl", "dropped.jsonl"):
        assert rows("whole", name) == rows("streamed", name)
    timing = ("seconds", "traces_per_s", "grading")
    assert {k: v for k, v in whole.items() if k not in timing} == {k: v for k, v in streamed.items() if k not in timing}
    assert pq.read_table(tmp_path / "whole" / "dataset" / "data").to_pylist() == \
        pq.read_table(tmp_path / "streamed" / "dataset" / "data").to_pylist()

    # what the funnel says, per problem: the wrong generation and the repeated one dropped
    assert streamed["input"] == 13 * 4 and streamed["kept"] == 13 * 2
    assert streamed["dropped_by_first_reason"] == {"correctness": 13, "duplicate_trace": 13}
    records = read_traces(tmp_path / "streamed" / "kept.jsonl") + read_traces(tmp_path / "streamed" / "dropped.jsonl")
    kept_keys = [(r.problem_id, r.sample_index) for r in read_traces(tmp_path / "streamed" / "kept.jsonl")]
    assert kept_keys == sorted(kept_keys)
    duplicate = next(r for r in records if not r.checks["duplicate_trace"].passed)
    assert duplicate.sample_index == 2 and duplicate.checks["duplicate_trace"].reason == "same trace as sample 0"
    # nothing but the outputs: no spill runs, no partial files
    assert sorted(p.name for p in (tmp_path / "streamed").iterdir()) == \
        ["dataset", "dropped.jsonl", "kept.jsonl", "manifest.json", "report.json", "report.png"]
