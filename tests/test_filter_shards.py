"""`filter --shard I/N` splits the work by problem for N machines: the shards' kept traces together are the
unsharded run's, a problem asked twice under two ids lands in one shard (so the duplicate is still found), and
a malformed --shard stops in one line."""

import subprocess
import sys

import pytest

from r1_distill.errors import UserError
from r1_distill.teacher.filter import FilterConfig, filter_traces
from r1_distill.traces import TraceRecord, read_traces, write_traces


def _records() -> list[TraceRecord]:
    records = []
    for i in range(40):
        a, b = i + 2, i % 7 + 3
        problem = f"What is {a} times {b}?"
        for sample, answer in enumerate((a * b, a * b, a * b + 1)):  # two right (one a duplicate), one wrong
            reasoning = f"Multiplying {a} by {b} gives {a * b}." if sample < 2 else f"I guess {answer}."
            records.append(TraceRecord.from_completion(
                problem_id=f"p{i}", problem=problem, prompt=problem, sample_index=sample, reference_answer=str(a * b),
                teacher="t", backend="script", finish_reason="stop",
                completion=f"{reasoning}\n</think>\n\nThe answer is $\\boxed{{{answer}}}$."))
    # the same problem again under another id, as a second public set would carry it
    records.append(records[0].model_copy(update={"problem_id": "copy-of-p0", "sample_index": 0}))
    return records


def _kept(path) -> set[tuple[str, int]]:
    return {(r.problem_id, r.sample_index) for r in read_traces(path / "kept.jsonl")}


@pytest.mark.slow
def test_shards_together_keep_what_one_run_keeps(tmp_path):
    traces = tmp_path / "traces.jsonl"
    write_traces(traces, _records())
    whole = filter_traces(FilterConfig(traces=[str(traces)], out=str(tmp_path / "whole"), workers=1))
    parts = [filter_traces(FilterConfig(traces=[str(traces)], out=str(tmp_path / f"s{i}"), workers=1, shard=f"{i}/2"))
             for i in range(2)]
    assert all(0 < p["input"] < whole["input"] for p in parts)
    assert sum(p["input"] for p in parts) == whole["input"]
    assert _kept(tmp_path / "s0") | _kept(tmp_path / "s1") == _kept(tmp_path / "whole")
    assert not _kept(tmp_path / "s0") & _kept(tmp_path / "s1")
    found = whole["dropped_by_first_reason"]["duplicate_prompt"]  # p0's samples: "copy-of-p0" sorts first
    assert found == 3 and sum(p["dropped_by_first_reason"].get("duplicate_prompt", 0) for p in parts) == found
    assert parts[0]["shard"] == "0/2"


@pytest.mark.parametrize("spec", ["2/2", "1", "a/b", "-1/3"])
def test_a_malformed_shard_is_refused(spec):
    with pytest.raises(UserError, match="--shard"):
        FilterConfig(traces=["x.jsonl"], out="o", shard=spec)


def test_the_cli_says_it_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "r1_distill", "filter", "--traces", "x.jsonl", "--out", "o",
                          "--shard", "3/2"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "--shard" in out.stderr
