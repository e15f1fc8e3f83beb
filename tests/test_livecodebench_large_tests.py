"""LiveCodeBench's private tests run to megabytes: a benchmark keeps tests over 256 KiB in a file beside its
prompts (named by digest) and the reference, which every sample's trace carries, points to it; grading reads
the file (and refuses one that changed)."""

import json

import pytest

from r1_distill.benchmarks import BenchRun, prepare
from r1_distill.grading import TraceParts, grade_one
from r1_distill.grading.livecodebench import encode_private_tests
from r1_distill.grading.sandbox import bwrap_path
from r1_distill.registry import load_registry

SUM = "```python\nimport sys\nnums = sys.stdin.read().split()[1:]\nprint(sum(map(int, nums)))\n```"
FIRST = "```python\nimport sys\nprint(sys.stdin.read().split()[1])\n```"


def _row():
    numbers = list(range(1, 60001))  # about 350 KB of input
    big = {"input": f"{len(numbers)}\n{' '.join(map(str, numbers))}\n", "output": f"{sum(numbers)}\n", "testtype": "stdin"}
    return {"question_title": "Big Sum", "question_content": "Print the sum of the N integers given after N.",
            "platform": "atcoder", "question_id": "abc999_b", "contest_id": "abc999", "contest_date": "2024-10-05T00:00:00",
            "starter_code": "", "difficulty": "easy",
            "public_test_cases": json.dumps([{"input": "2\n1 2\n", "output": "3\n", "testtype": "stdin"}]),
            "private_test_cases": encode_private_tests([big]), "metadata": "{}"}


@pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap (bwrap) is not installed: apt-get install -y bubblewrap")
def test_large_tests_live_in_a_file_the_reference_points_to(tmp_path):
    rows = tmp_path / "lcb.jsonl"
    rows.write_text(json.dumps(_row()) + "\n")
    run = BenchRun("lcb", load_registry().benchmark("lcb"), str(rows))
    [record] = prepare(run, tests_dir=tmp_path / "tests")
    reference = record["answer"]
    assert len(reference) < 1000
    body = json.loads(reference)["code_tests"]
    assert body["count"] == 2 and body["limits"]["wall_s"] == 6
    stored = list((tmp_path / "tests").glob("tests-*.json"))
    assert [str(p) for p in stored] == [body["tests_file"]] and stored[0].stat().st_size > 256 << 10

    assert grade_one(TraceParts.from_text(f"</think>\n{SUM}", reference=reference), "correctness")[0]
    ok, reason = grade_one(TraceParts.from_text(f"</think>\n{FIRST}", reference=reference), "correctness")
    assert not ok and "test 1 of 2" in reason

    stored[0].write_text(stored[0].read_text().replace('"3\\n"', '"4\\n"'))  # the tests changed under it
    ok, reason = grade_one(TraceParts.from_text(f"</think>\n{SUM}", reference=reference), "correctness")
    assert not ok and "digest differs" in reason
