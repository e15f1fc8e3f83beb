"""Speculative decoding in the engine changes speed, never output: with a draft model (the student's Q8_0
drafting for its Q4_K_M) or prompt lookup, greedy output is token for token the plain decode's, and sampled
output keeps the plain decode's distribution (a chi-square test where about two drafts in three are
accepted); a draft with another vocabulary is refused before anything loads."""

import math
import threading
from collections import Counter

import pytest

pytestmark = pytest.mark.slow

from r1_distill.errors import UserError
from r1_distill.llama.engine import BatchEngine, GenerationRequest, Speculation
from r1_distill.llama.speculation import PromptLookup, check_draft_vocabulary


def generate(engine: BatchEngine, prompts: list[list[int]], **settings) -> list[tuple[list[int], dict]]:
    """All prompts submitted at once (several slots verify drafts in one batch); the tokens and usage of each."""
    results = [([], {}) for _ in prompts]
    done = [threading.Event() for _ in prompts]

    def emitter(i):
        def emit(ev):
            if ev.kind == "logprob":
                results[i][0].append(ev.data["token"])
            elif ev.kind == "done":
                results[i][1].update(ev.usage, finish_reason=ev.finish_reason)
                done[i].set()
        return emit

    engine.submit_many([GenerationRequest(prompt_tokens=p, logprobs=0, **settings) for p in prompts],
                       [emitter(i) for i in range(len(prompts))])
    assert all(d.wait(120) for d in done)
    return results


@pytest.fixture(scope="module")
def engines(tiny_gguf, tiny_gguf_q8):
    made = {"plain": BatchEngine(str(tiny_gguf), parallel=3, ctx=512, threads=1),
            "draft": BatchEngine(str(tiny_gguf), parallel=3, ctx=512, threads=1,
                                 speculation=Speculation(draft_model=str(tiny_gguf_q8), draft_max=4, draft_p_min=0.0)),
            "lookup": BatchEngine(str(tiny_gguf), parallel=3, ctx=512, threads=1, speculation=Speculation(lookup=6))}
    yield made
    for engine in made.values():
        engine.close()


def test_greedy_output_is_the_plain_output_token_for_token(engines):
    plain = engines["plain"]
    prompts = [plain.tokenize(t) for t in ("Compute 3+4. Please think.", "hi",
                                           "the cat sat on the mat; the cat sat on the mat; the cat")]
    want = generate(plain, prompts, temperature=0, max_tokens=80)
    for name in ("draft", "lookup"):
        got = generate(engines[name], prompts, temperature=0, max_tokens=80)
        assert [tokens for tokens, _ in got] == [tokens for tokens, _ in want], name
        accepted = sum(usage["draft_tokens_accepted"] for _, usage in got)
        assert accepted > 40, f"{name}: the drafts must be accepted for the comparison to mean anything"
        assert all(usage["completion_tokens"] == 80 for _, usage in got)
    assert engines["draft"].stats["draft_tokens_accepted"] <= engines["draft"].stats["draft_tokens"]


def first_departure(tokens: list[int], greedy: list[int]) -> int:
    return next((i for i, (a, b) in enumerate(zip(tokens, greedy)) if a != b), len(greedy))


def chi_square_p_value_df4(a: Counter, b: Counter, categories: range) -> float:
    """Two-sample chi-square test over 5 categories (4 degrees of freedom: p = e^(-x/2) (1 + x/2))."""
    n_a, n_b = sum(a.values()), sum(b.values())
    x = 0.0
    for c in categories:
        total = a[c] + b[c]
        for observed, n in ((a[c], n_a), (b[c], n_b)):
            expected = total * n / (n_a + n_b)
            x += (observed - expected) ** 2 / expected if expected else 0.0
    return math.exp(-x / 2) * (1 + x / 2)


def test_sampled_output_keeps_the_plain_distribution(engines):
    """At temperature 0.05 this model's next token is its greedy one about 85% of the time: the category of a
    sample is where it first leaves the greedy continuation (token 0..3, or never)."""
    plain = engines["plain"]
    prompt = plain.tokenize("Compute 3+4. Please think.")
    greedy = generate(plain, [prompt], temperature=0, max_tokens=4)[0][0]
    settings = dict(temperature=0.05, top_p=1.0, max_tokens=4)  # no seed: every request draws afresh
    counts = {}
    for name in ("plain", "draft"):
        counts[name] = Counter()
        for _ in range(40):
            for tokens, _ in generate(engines[name], [prompt] * 3, **settings):
                counts[name][first_departure(tokens, greedy)] += 1
    usage = engines["draft"].stats
    assert 0.3 < usage["draft_tokens_accepted"] / usage["draft_tokens"] < 0.95, usage
    assert counts["plain"][4] < 0.95 * 120, "the test needs samples that leave the greedy path"
    p = chi_square_p_value_df4(counts["plain"], counts["draft"], range(5))
    assert p > 0.001, (counts, p)


def test_a_draft_with_another_vocabulary_is_refused(tiny_gguf, small_vocab_model, tmp_path):
    from r1_distill.export.converter import run_converter

    other = tmp_path / "other-vocabulary.gguf"
    run_converter(small_vocab_model, other, "f16")
    with pytest.raises(UserError, match="--draft .*share the model's vocabulary"):
        check_draft_vocabulary(str(tiny_gguf), str(other))
    with pytest.raises(UserError, match="share the model's vocabulary"):
        BatchEngine(str(tiny_gguf), parallel=1, ctx=256, threads=1, speculation=Speculation(draft_model=str(other)))


def test_prompt_lookup_drafts_what_followed_the_last_ngram():
    lookup = PromptLookup()
    assert lookup.lookup([5, 6, 7, 8, 9, 1, 5, 6, 7], 3) == [8, 9, 1]
    assert lookup.lookup([1, 2, 3, 4], 3) == []
    assert lookup.lookup([3, 3, 3, 3, 3], 3) == [3, 3]  # a loop: the earliest occurrence, which has tokens after it
    assert lookup.lookup([1, 2, 9, 1, 2, 7, 1, 2], 2) == [7, 1]  # the latest occurrence that has n after it
