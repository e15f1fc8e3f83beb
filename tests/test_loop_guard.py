"""The runaway-thinking detector on plain token lists: a span of 16 tokens seen 4 times (not overlapping)
among the last tokens is a loop; repeated short phrases, 3 repeats, or repeats spread wider than the
window are not."""

import numpy as np

from r1_distill.llama.loop_guard import LoopDetector, LoopGuard, repeats_of_tail


def first_alarm(tokens, guard=LoopGuard()):
    detector = LoopDetector(guard)
    for i, t in enumerate(tokens):
        if detector.add(t):
            return i + 1  # tokens seen when it fired
    return None


def test_one_token_repeated_fires_after_four_spans():
    assert first_alarm([7] * 200) == 64
    assert first_alarm(list(range(100, 130)) + [7] * 200) == 30 + 64


def test_a_block_repeated_fires_when_its_tail_has_appeared_four_times():
    block = list(range(1000, 1020))  # period 20: the last 16 tokens recur every 20
    assert first_alarm(block * 10) == 3 * 20 + 16


def test_three_repeats_are_not_a_loop():
    rng = np.random.default_rng(0)
    block = list(range(500, 540))
    tokens = [int(t) for t in rng.integers(0, 50_000, 300)] + block * 3 + [int(t) for t in rng.integers(0, 50_000, 300)]
    assert first_alarm(tokens) is None


def test_short_phrases_repeated_between_new_text_are_not_a_loop():
    rng = np.random.default_rng(1)
    wait = [11, 22, 33, 44, 55, 66, 77, 88]  # "Wait, let me check that again." recurs, with new work between
    tokens = []
    for _ in range(60):
        tokens += wait + [int(t) for t in rng.integers(0, 50_000, 30)]
    assert first_alarm(tokens) is None


def test_repeats_spread_wider_than_the_window_are_not_a_loop():
    rng = np.random.default_rng(2)
    guard = LoopGuard(ngram=16, repeats=4, window=256)
    block = list(range(2000, 2016))
    tokens = []
    for _ in range(6):
        tokens += block + [int(t) for t in rng.integers(0, 50_000, 200)]
    assert first_alarm(tokens, guard) is None
    assert first_alarm(tokens, LoopGuard(ngram=16, repeats=4, window=2048)) is not None


def test_overlapping_occurrences_count_once():
    assert repeats_of_tail([5] * 31, 16, 2048) == 1  # 16 overlapping matches, one without overlap
    assert repeats_of_tail([5] * 32, 16, 2048) == 2
    assert repeats_of_tail([1, 2, 3], 16, 2048) == 0
