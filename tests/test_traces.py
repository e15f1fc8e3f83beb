import json
import os
import signal
import subprocess
import sys

import pytest

from r1_distill.errors import UserError
from r1_distill.files import read_jsonl, repair_jsonl_tail
from r1_distill.traces import CheckResult, TraceRecord, append_traces, read_traces, write_traces


def _record(i=0, **kw):
    return TraceRecord.from_completion(
        problem_id=f"p{i}", problem="What is 2+2?", reference_answer="4", sample_index=kw.pop("sample_index", 0),
        teacher="tiny", backend="transformers", sampling={"temperature": 0.6, "top_p": 0.95},
        completion="Two and two.\n</think>\n\n\\boxed{4}", finish_reason="stop", completion_tokens=12, **kw)


def test_record_splits_its_completion():
    r = _record()
    assert (r.reasoning, r.answer, r.key) == ("Two and two.", "\\boxed{4}", ("p0", 0))
    api = TraceRecord.from_completion(problem_id="p", problem="q", sample_index=1, teacher="api", backend="openai",
                                      completion=" 4 ", reasoning=" because ")
    assert (api.reasoning, api.answer) == ("because", "4") and "</think>" in api.completion


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_roundtrip(tmp_path, suffix):
    records = [_record(i, sample_index=i % 2) for i in range(5)]
    records[0].checks["format"] = CheckResult(passed=False, reason="no </think>")
    path = write_traces(tmp_path / f"t{suffix}", records)
    back = read_traces(path)
    assert [r.model_dump() for r in back] == [r.model_dump() for r in records]
    assert back[0].checks["format"].reason == "no </think>"


def test_partial_last_line_is_skipped_and_repaired(tmp_path):
    path = tmp_path / "traces-0.jsonl"
    append_traces(path, [_record(0), _record(1)])
    with open(path, "a") as fh:
        fh.write('{"problem_id": "p2", "proble')  # a crash mid-line
    assert [r.problem_id for r in read_traces(tmp_path)] == ["p0", "p1"]
    repair_jsonl_tail(path)
    append_traces(path, [_record(3)])
    assert [r.problem_id for r in read_traces(path)] == ["p0", "p1", "p3"]


def test_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(ValueError, match="x.jsonl:2"):
        list(read_jsonl(path))


def test_bad_record_names_the_file(tmp_path):
    (tmp_path / "traces-0.jsonl").write_text(json.dumps({"problem_id": "p"}) + "\n")
    with pytest.raises(UserError, match="traces-0.jsonl: record 1"):
        read_traces(tmp_path)
    with pytest.raises(UserError, match="no traces"):
        read_traces(tmp_path / "missing")


def test_sigkill_while_appending_never_leaves_a_partial_record(tmp_path):
    path = tmp_path / "traces-0.jsonl"
    writer = (
        "import sys; sys.path.insert(0, %r)\n"
        "from r1_distill.files import append_lines\n"
        "i = 0\n"
        "while True:\n"
        "    append_lines(%r, ['{\"i\": %%d, \"pad\": \"%%s\"}' %% (i, 'x' * 5000)]); i += 1\n"
    ) % (os.getcwd(), str(path))
    proc = subprocess.Popen([sys.executable, "-c", writer])
    try:
        for _ in range(200):
            if path.exists() and path.stat().st_size > 200_000:
                break
            __import__("time").sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    rows = list(read_jsonl(path))
    assert rows and [r["i"] for r in rows] == list(range(len(rows)))
