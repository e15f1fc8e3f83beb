"""Every GRPO reward's parameters reach it from the command line's fields: the language reward's script and
share, the repetition reward's n-gram and scale, the length reward's budget."""

from r1_distill.distill.grpo import GRPORunConfig, build_reward_functions
from r1_distill.options import cli_options

RUSSIAN = [{"role": "assistant", "content": "Сначала сложим два и три, получим пять.\n</think>\n\nОтвет: \\boxed{5}."}]
ENGLISH = [{"role": "assistant", "content": "First add two and three to get five.\n</think>\n\nSo \\boxed{5}."}]
LOOP = [{"role": "assistant", "content": ("the sum is five " * 40) + "\n</think>\n\n\\boxed{5}"}]


def test_the_language_reward_takes_its_script_and_share():
    (latin,) = build_reward_functions(["language"])
    (cyrillic,) = build_reward_functions(["language"], language="Cyrillic", language_min_share=0.8)
    assert latin(completions=[RUSSIAN, ENGLISH], answer=["5", "5"]) == [0.0, 1.0]
    assert cyrillic(completions=[RUSSIAN, ENGLISH], answer=["5", "5"]) == [1.0, 0.0]


def test_the_repetition_reward_takes_its_ngram_and_scale():
    (default,) = build_reward_functions(["repetition"])
    (halved,) = build_reward_functions(["repetition"], repetition_scale=0.5)
    (long_ngrams,) = build_reward_functions(["repetition"], repetition_ngram=30)
    full, half = default(completions=[LOOP], answer=["5"])[0], halved(completions=[LOOP], answer=["5"])[0]
    assert full < -0.5 and abs(half - full / 2) < 1e-9
    assert long_ngrams(completions=[LOOP], answer=["5"])[0] > full  # fewer 30-word repeats than 8-word ones


def test_the_length_reward_takes_its_budget():
    (length,) = build_reward_functions(["length"], length_budget=20)
    assert length(completions=[ENGLISH, LOOP], answer=["5", "5"]) == [0.0, -1.0]


def test_each_reward_parameter_is_a_grpo_flag():
    flags = {flag for o in cli_options(GRPORunConfig) for flag in o.flags}
    assert {"--length-budget", "--language", "--language-min-share", "--repetition-ngram", "--repetition-scale"} <= flags
