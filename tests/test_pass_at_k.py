"""distill.pass_at_k: the unbiased estimator equals the exact chance, over every k-subset of the n samples,
that one of them is right; and eval's summary reports it for k = 1, 2, 4, ... up to K."""

from itertools import combinations

import pytest

from r1_distill.distill.evaluate import summarize
from r1_distill.distill.pass_at_k import ks_for, pass_at_k, pass_at_ks


def _by_enumeration(n: int, c: int, k: int) -> float:
    right = [True] * c + [False] * (n - c)
    subsets = list(combinations(range(n), k))
    return sum(any(right[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_matches_enumeration_of_every_subset(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(_by_enumeration(n, c, k))


def test_hand_made_cases():
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 2, 2) == pytest.approx(5 / 6)  # 1 - C(2,2)/C(4,2)
    assert pass_at_k(4, 3, 2) == 1.0 and pass_at_k(4, 0, 4) == 0.0
    assert ks_for(1) == [1] and ks_for(8) == [1, 2, 4, 8] and ks_for(6) == [1, 2, 4, 6]
    assert pass_at_ks([(4, 1), (4, 0), (4, 4)]) == {"pass@1": pytest.approx(5 / 12), "pass@2": pytest.approx(0.5),
                                                     "pass@4": pytest.approx(2 / 3)}
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def test_eval_summary_reports_pass_at_k():
    problems = [{"samples": 4, "correct": c, "pass@1": c / 4, "consensus": 0.0, "truncated": 0, "unclosed": 0,
                 "mean_reasoning_tokens": None, "mean_answer_tokens": None} for c in (1, 0, 4)]
    summary = summarize(problems, 4)
    assert summary["pass@k"]["pass@1"] == pytest.approx(summary["pass@1"])
    assert summary["pass@k"]["pass@2"] == pytest.approx(0.5) and summary["pass@k"]["pass@4"] == pytest.approx(2 / 3)
