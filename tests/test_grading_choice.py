"""grading.choice: a GPQA answer's letter is read as lighteval reads it (priority, then the rightmost match),
from the answer after the thinking only, through the same `correctness` check as filter, eval and grpo."""

import pytest

from r1_distill.grading import TraceParts, grade, reward_function
from r1_distill.grading.choice import choice_reference, extract_letter

REF_B = choice_reference("B")


def _verdicts(completions, reference=REF_B):
    items = [TraceParts.from_text(c, reference=reference) for c in completions]
    return [v["correctness"] for v in grade(items, ["correctness"])]


def test_right_and_wrong_letters_and_the_thinking_is_not_read():
    completions = [
        "Heating at constant volume...\n</think>\n\nThe pressure doubles.\n\nAnswer: B",  # right
        "hmm\n</think>\n\nAnswer: C",  # wrong
        "it could be B, surely B\n</think>\n\nI cannot decide.",  # B only while thinking: no letter
        "it could be B, surely B, Answer: B",  # the thinking never closed: no answer at all
        "<think>\nA? no, B.\n</think>\nAnswer: D",  # both tags: the answer says D
        "</think>\n**Answer: B**",  # markdown around it
    ]
    verdicts = _verdicts(completions)
    assert [ok for ok, _ in verdicts] == [True, False, False, False, False, True]
    assert "answered C" in verdicts[1][1] and "no letter" in verdicts[2][1] and "never closed" in verdicts[3][1]


def test_lighteval_priority_and_rightmost_match():
    # "Answer:" outranks a later bare letter; within a priority the rightmost match wins
    assert extract_letter("Answer: A\nso maybe C is tempting") == "A"
    assert extract_letter("Answer: A at first. Answer: C") == "C"
    # "the answer is B." (priority 50) over a bare letter elsewhere
    assert extract_letter("Option D looks wrong; the answer is B.") == "B"
    # a letter opening the text, then a bare letter as a word, then any letter
    assert extract_letter("C. because of the sp orbitals") == "C"
    assert extract_letter("I pick D") == "D"
    assert extract_letter("no letters here at all") is None
    # only the letters offered count: with four, lighteval's last resort (any letter) takes the A of "Answer"
    assert extract_letter("Answer: E", "ABCDE") == "E"
    assert extract_letter("Answer: E", "ABCD") == "A"


def test_reward_function_for_grpo():
    reward = reward_function("correctness")
    got = reward(prompts=["q", "q"], completions=["x</think>Answer: B", "x</think>Answer: A"], answer=[REF_B, REF_B])
    assert got == [1.0, 0.0]


def test_a_bad_reference_letter_is_refused():
    with pytest.raises(ValueError):
        choice_reference("E")
