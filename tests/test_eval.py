"""distill/evaluate.py: pass@1 and cons@K on known samples (ties included), and real runs on an HF
folder, a GGUF and a URL."""

import json
import subprocess
import sys

import pytest

from r1_distill.distill.evaluate import EvalConfig, consensus_credit, evaluate, score_problem, summarize, vote_key
from r1_distill.traces import TraceRecord


def _samples(pid, reference, answers):
    out = []
    for k, answer in enumerate(answers):
        text = "thinking\n</think>\n\n" + (f"The answer is \\boxed{{{answer}}}." if answer is not None else "I am not sure.")
        out.append(TraceRecord.from_completion(problem_id=pid, problem=f"problem {pid}", reference_answer=reference,
                                               sample_index=k, teacher="t", backend="b", completion=text,
                                               finish_reason="stop", completion_tokens=10))
    return out


def test_pass_at_1_and_cons_at_k_on_known_samples():
    problems = [
        score_problem(_samples("a", "5", [5, 5, 3, None])),  # pass 2/4, majority 5 (right)
        score_problem(_samples("b", "7", [7, 8, 8, 7])),  # pass 2/4, a 7/8 tie: half credit
        score_problem(_samples("c", "2", [1, 1, 1, 2])),  # pass 1/4, majority wrong
        score_problem(_samples("d", "9", [None] * 4)),  # no answers: no votes
        score_problem(_samples("e", "1000", ["1,000", "1000", "$1000$", 7])),  # one answer, three spellings
    ]
    assert [p["pass@1"] for p in problems] == [0.5, 0.5, 0.25, 0.0, 0.75]
    assert [p["consensus"] for p in problems] == [1.0, 0.5, 0.0, 0.0, 1.0]
    assert problems[1]["majority"] == ["7", "8"] and problems[4]["votes"] == {"1000": 3, "7": 1}
    summary = summarize(problems, 4)
    assert summary["pass@1"] == pytest.approx((0.5 + 0.5 + 0.25 + 0 + 0.75) / 5)
    assert summary["cons@K"] == summary["cons@4"] == pytest.approx((1 + 0.5 + 0 + 0 + 1) / 5)


def test_three_way_tie_and_vote_keys():
    assert consensus_credit(["1", "2", "3"], [False, True, False]) == (pytest.approx(1 / 3), ["1", "2", "3"])
    assert consensus_credit([None, None], [False, False]) == (0.0, [])
    assert vote_key("so \\boxed{\\dfrac{1}{2}}") == vote_key("\\boxed{\\frac{1}{2}}")
    assert vote_key("no box here 12") is None


def _bench(tmp_path, n=3):
    rows = [{"id": f"p{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(n)]
    path = tmp_path / "bench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _check_outputs(out, problems, k):
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problems"] == problems and summary["K"] == k
    assert 0.0 <= summary["pass@1"] <= 1.0 and "cons@K" in summary and f"cons@{k}" in summary
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(results) == problems and all(r["samples"] == k for r in results)
    return summary


@pytest.mark.slow
def test_eval_runs_on_an_hf_folder(small_vocab_model, tmp_path):
    summary = evaluate(EvalConfig(model=str(small_vocab_model), bench=str(_bench(tmp_path)), out=str(tmp_path / "hf"),
                                  samples=2, max_tokens=8, show_progress=False))
    _check_outputs(tmp_path / "hf", 3, 2)
    assert summary["backend"] == "transformers" and summary["truncation_rate"] > 0.5  # a random model rambles


@pytest.mark.slow
def test_eval_runs_on_a_gguf_and_a_url_through_the_cli(tiny_gguf, server, tmp_path):
    bench = _bench(tmp_path)
    for name, model in (("gguf", str(tiny_gguf)), ("url", server.url + "/v1")):
        run = subprocess.run([sys.executable, "-m", "r1_distill", "eval", "--model", model, "--bench", str(bench),
                              "--out", str(tmp_path / name), "--samples", "3", "--max-tokens", "8"],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        assert "pass@1" in run.stdout and "cons@3" in run.stdout
        summary = _check_outputs(tmp_path / name, 3, 3)
        assert summary["backend"] == ("llamacpp" if name == "gguf" else "openai")


def test_eval_without_reference_answers_is_a_clear_error(tmp_path, tiny_gguf):
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"id": "x", "problem": "2+2?"}) + "\n")
    run = subprocess.run([sys.executable, "-m", "r1_distill", "eval", "--model", str(tiny_gguf), "--bench", str(bench),
                          "--out", str(tmp_path / "o"), "--samples", "1", "--max-tokens", "2"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "reference answer" in run.stderr and "Traceback" not in run.stderr


def test_cons_at_k_votes_over_mathematically_equal_answers():
    # by strings 7 would lead (2 votes against 1, 1, 1); as numbers 1/2 has three votes
    p = score_problem(_samples("h", "\\frac{1}{2}", ["0.5", "\\frac12", "\\dfrac{2}{4}", 7, 7]))
    assert p["pass@1"] == pytest.approx(3 / 5) and p["consensus"] == 1.0
    assert p["votes"] == {"0.5": 3, "7": 2} and p["majority"] == ["0.5"]
    # sets in another order and x = ... are one answer too; a different set is another
    q = score_problem(_samples("s", "-2,1", ["1,-2", "-2, 1", "x=-2, x=1", "-21"]))
    assert q["votes"] == {"1,-2": 3, "-21": 1} and q["consensus"] == 1.0


def test_summary_has_the_standard_error_and_the_unclosed_share():
    def closed(pid, answers):
        return _samples(pid, "5", answers)

    unclosed = [TraceRecord.from_completion(problem_id="u", problem="p", reference_answer="5", sample_index=k, teacher="t",
                                            backend="b", completion="still thinking about 5", finish_reason="length")
                for k in range(2)]
    problems = [score_problem(closed("a", [5, 5])), score_problem(closed("b", [3, 3])), score_problem(closed("c", [5, 3])),
                score_problem(unclosed)]
    rates = [1.0, 0.0, 0.5, 0.0]
    summary = summarize(problems, 2)
    mean = sum(rates) / 4
    expected = (sum((r - mean) ** 2 for r in rates) / 3 / 4) ** 0.5
    assert summary["pass@1"] == pytest.approx(mean) and summary["pass@1_stderr"] == pytest.approx(expected)
    assert summary["unclosed_thinking_rate"] == pytest.approx(2 / 8)
    assert problems[3]["unclosed"] == 2 and problems[3]["votes"] == {}


def test_eval_into_one_folder_with_two_benches_is_refused(tiny_gguf, tmp_path):
    """Acceptance 4: a second bench into the same --out is refused with what to do; growing --limit on the
    same bench is the same evaluation, and only the current problems are scored."""
    first = _bench(tmp_path, 4)
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"What is {i} times 3?", "answer": str(3 * i)}) + "\n"
                             for i in range(4)))  # the same ids: positional or not, they must not collide

    def run(bench, *extra):
        return subprocess.run([sys.executable, "-m", "r1_distill", "eval", "--model", str(tiny_gguf), "--bench", str(bench),
                               "--out", str(tmp_path / "out"), "--samples", "1", "--max-tokens", "4", *extra],
                              capture_output=True, text=True, timeout=300)

    assert run(first, "--limit", "2").returncode == 0
    before = (tmp_path / "out" / "summary.json").read_text()
    refused = run(other, "--limit", "2")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "holds another evaluation" in refused.stderr and "bench_digest" in refused.stderr and "--out" in refused.stderr
    assert (tmp_path / "out" / "summary.json").read_text() == before
    grown = run(first, "--limit", "3")
    assert grown.returncode == 0, grown.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["problems"] == 3 and summary["bench_digest"]
    assert run(first, "--limit", "2").returncode == 0
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["problems"] == 2  # never more than asked
