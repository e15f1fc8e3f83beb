"""pass@k by the unbiased estimator (Chen et al. 2021, "Evaluating Large Language Models Trained on Code"):
with n samples of which c are right, the chance that k drawn without replacement hold a right one,
1 - C(n-c, k) / C(n, k), averaged over problems. pass@1 is the mean share of right samples."""

from __future__ import annotations

from math import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    """One problem's unbiased pass@k estimate from n samples, c of them right (k <= n)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def ks_for(n: int) -> list[int]:
    """The k reported for n samples: 1, 2, 4, 8, ... up to n, and n itself."""
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    return ks if ks[-1] == n else ks + [n]


def pass_at_ks(counts: list[tuple[int, int]]) -> dict[str, float]:
    """pass@k over problems, each given as (samples, right), for every k of ks_for(the fewest samples)."""
    if not counts:
        return {}
    n_min = min(n for n, _ in counts)
    if n_min < 1:
        return {}
    return {f"pass@{k}": sum(pass_at_k(n, c, k) for n, c in counts) / len(counts) for k in ks_for(n_min)}
