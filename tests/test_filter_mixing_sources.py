"""`filter` mixes several trace sources at once, each with an optional cap or weight: the same problem in two public
sets is one problem (its samples numbered on across them, a trace found in both dropped once as a duplicate),
a cap takes a source's first N traces, a weight a share of its problems (all of a problem's samples or none,
the same every run), and report.json and the dataset card count each source."""

import json

from r1_distill.teacher.filter import FilterConfig, filter_traces
from r1_distill.traces import TraceRecord, read_traces, write_traces

PROBLEM = "What is six times seven?"


def _think(reasoning, answer):
    return f"<think>\n{reasoning}\n</think>\n\nThe answer is $\\boxed{{{answer}}}$."


def _reasoning(a, b):
    return f"Multiplying {a} by {b} step by step gives {a * b}. Checking by repeated addition, the total is {a * b} again."


def openr1_row(problem, generations, reference):
    return {"problem": problem, "solution": f"$\\boxed{{{reference}}}$", "answer": reference, "problem_type": "Algebra",
            "question_type": "math-word-problem", "source": "olympiads", "uuid": "u",
            "is_reasoning_complete": [True] * len(generations), "generations": generations,
            "correctness_math_verify": [True] * len(generations), "correctness_llama": None,
            "finish_reasons": ["stop"] * len(generations), "correctness_count": 1,
            "messages": [{"content": problem, "role": "user"}, {"content": generations[0], "role": "assistant"}]}


def mixture_row(problem, completion):
    return {"messages": [{"content": problem, "role": "user"}, {"content": completion, "role": "assistant"}],
            "num_tokens": 100, "source": "open-r1/OpenR1-Math-220k"}


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def test_sources_mix_with_caps_weights_and_cross_source_duplicates(tmp_path):
    right, wrong = _think(_reasoning(6, 7), 42), _think(_reasoning(6, 7).replace("42", "41"), 41)
    openr1 = _jsonl(tmp_path / "openr1.jsonl", [openr1_row(PROBLEM, [right, wrong], "42")])
    # Mixture-of-Thoughts has the same problem: once with OpenR1's right trace, once with a trace of its own
    own_trace = _think("Six sevens: 7 + 7 + 7 + 7 + 7 + 7 = 42, and 6 * 7 = 42 agrees.", 42)
    mixture = _jsonl(tmp_path / "mixture.jsonl", [mixture_row(PROBLEM, right), mixture_row(PROBLEM, own_trace)])
    ours = tmp_path / "ours.jsonl"
    write_traces(ours, [TraceRecord.from_completion(
        problem_id=f"q{i}", problem=f"What is {i} times two?", reference_answer=str(2 * i), sample_index=0, teacher="ours",
        backend="test", completion=_think(_reasoning(i, 2), 2 * i), finish_reason="stop") for i in range(5)])
    weighted = _jsonl(tmp_path / "weighted.jsonl", [
        openr1_row(f"What is {i} times nine?", [_think(_reasoning(i, 9), 9 * i), _think(_reasoning(9, i), 9 * i)], str(9 * i))
        for i in range(1, 41)])

    sources = [openr1, mixture, f"{ours}:cap=3", f"{weighted}:weight=0.5"]
    report = filter_traces(FilterConfig(traces=sources, out=str(tmp_path / "out"), workers=1))
    kept = read_traces(tmp_path / "out" / "kept.jsonl")
    dropped = read_traces(tmp_path / "out" / "dropped.jsonl")

    # one problem across the two sets: samples 0, 1 from OpenR1, 2, 3 from Mixture-of-Thoughts
    shared = sorted((r for r in kept + dropped if r.problem == PROBLEM), key=lambda r: r.sample_index)
    assert [(r.sample_index, r.teacher) for r in shared] == [(0, "openr1-math"), (1, "openr1-math"),
                                                            (2, "mixture-of-thoughts"), (3, "mixture-of-thoughts")]
    assert len({r.problem_id for r in shared}) == 1
    assert shared[0].kept and not shared[1].kept and not shared[1].checks["correctness"].passed
    assert not shared[2].kept and shared[2].checks["duplicate_trace"].reason == "same trace as sample 0"
    assert shared[3].kept  # its own trace: kept, unverified (Mixture-of-Thoughts has no reference)

    # the cap: the first three of our five traces
    assert sorted(r.problem_id for r in kept if r.teacher == "ours") == ["q0", "q1", "q2"]

    # the weight: a share of the problems, both samples of each taken or neither, the same every run
    taken = {r.problem for r in kept + dropped if "times nine" in r.problem}
    assert 8 <= len(taken) <= 32
    for problem in taken:
        assert sorted(r.sample_index for r in kept + dropped if r.problem == problem) == [0, 1]
    again = filter_traces(FilterConfig(traces=[f"{weighted}:weight=0.5"], out=str(tmp_path / "again"), workers=1))
    assert {r.problem for r in read_traces(tmp_path / "again" / "kept.jsonl")} | \
        {r.problem for r in read_traces(tmp_path / "again" / "dropped.jsonl")} == taken
    assert again["input"] == 2 * len(taken)

    # per-source counts, in report.json and the card
    assert report["sources"] == {
        openr1: {"input": 2, "kept": 1, "dropped": 1},
        mixture: {"input": 2, "kept": 1, "dropped": 1},
        f"{ours}:cap=3": {"input": 3, "kept": 3, "dropped": 0, "cap": 3},
        f"{weighted}:weight=0.5": {"input": 2 * len(taken), "kept": 2 * len(taken), "dropped": 0, "weight": 0.5},
    }
    assert json.loads((tmp_path / "out" / "report.json").read_text())["sources"] == report["sources"]
    assert report["input"] == 2 + 2 + 3 + 2 * len(taken)
    card = (tmp_path / "out" / "dataset" / "README.md").read_text()
    assert f"| `{ours}:cap=3` | 3 |  | 3 | 3 | 0 |" in card
    assert f"| `{mixture}` |  |  | 2 | 1 | 1 |" in card
