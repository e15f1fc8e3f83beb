"""The llama.cpp runtime's token choice (r1_distill.llama.sampling), on plain logits."""

import numpy as np
import pytest

from r1_distill.llama.sampling import sample_token


@pytest.mark.slow  # many draws for the statistics: 10 s
def test_sample_token_is_exact_nucleus_sampling():
    rng = np.random.default_rng(0)
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    logits = np.log(probs)
    assert sample_token(logits, 0.0, 0.95, 0, rng) == 0
    draws = np.bincount([sample_token(logits, 1.0, 0.75, 0, rng) for _ in range(4000)], minlength=4) / 4000
    assert draws[2] == draws[3] == 0 and abs(draws[0] - 0.5 / 0.8) < 0.03  # nucleus for 0.75: {0, 1}, mass 0.8
    draws = np.bincount([sample_token(logits, 1.0, 1.0, 2, rng) for _ in range(4000)], minlength=4) / 4000
    assert draws[2] == draws[3] == 0 and abs(draws[1] - 0.3 / 0.8) < 0.03  # top-k 2
    # a flat 152k-token distribution takes the fallback path and still cuts exactly the low tail
    flat = np.log(np.linspace(1.0, 2.0, 151936))
    picks = np.array([sample_token(flat, 1.0, 0.5, 0, rng, candidates=256) for _ in range(2000)])
    weights = np.linspace(1.0, 2.0, 151936)
    tail = np.cumsum(weights) / weights.sum()
    smallest_kept = int(np.searchsorted(tail, 0.5))
    assert picks.min() >= smallest_kept - 2 and picks.max() > 151000
