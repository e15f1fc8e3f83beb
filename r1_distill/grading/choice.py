"""The `choice` check: a multiple-choice answer (GPQA Diamond's four letters) against the right letter.

A multiple-choice problem's reference names its right letter and the letters offered, as JSON (like a code
problem's tests, so the trace record and the GRPO dataset need no other column):
``{"choice": {"answer": "C", "letters": "ABCD"}}`` (:func:`choice_reference`).

The letter is read as lighteval reads it for `gpqa:diamond` (`IndicesExtractionConfig` with
`NativeLetters`, English literals): five patterns in priority order, and within a priority the rightmost
match wins (the latest end, then the earliest start):

0. ``Answer:`` then up to 50 characters then the letter as a word (`Answer: $LETTER`, as the prompt asks);
50. ``answer`` then up to 50 characters then the letter as a word ("the answer is **B**.");
100. the letter as a word at the very start of the text;
150. the letter as a word anywhere (space or start before it, `.`, `,`, `:`, space or the end after it,
     optionally in ``**``);
200. the letter anywhere.

Unlike lighteval, the thinking is removed first, also when only ``</think>`` is present (the released
students' template opens ``<think>`` in the prompt): a letter named only while thinking ("maybe B")
is never taken, and a sample whose thinking never closed has no answer.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Optional

from .parts import TraceParts, Verdict

KEY = "choice"
LETTERS = "ABCD"


def choice_reference(answer: str, letters: str = LETTERS) -> str:
    """The reference string of a multiple-choice problem whose right letter is `answer`."""
    if len(answer) != 1 or answer not in letters:
        raise ValueError(f"the right letter {answer!r} is not one of {letters}")
    return json.dumps({KEY: {"answer": answer, "letters": letters}})


def is_choice_reference(reference: Optional[str]) -> bool:
    return reference is not None and str(reference).lstrip().startswith('{"' + KEY + '"')


def parse_choice_reference(reference: str) -> tuple[str, str]:
    body = json.loads(reference)[KEY]
    return str(body["answer"]), str(body.get("letters", LETTERS))


@lru_cache(maxsize=16)
def _patterns(letters: str) -> list[tuple[int, re.Pattern]]:
    index = "(?P<indices>" + "|".join(re.escape(c) for c in letters) + ")"
    suffix = r"(?:\*\*)?(?:[\.]|[\,]|[\:]|(?:\s| )|$)"
    word = rf"(^|(?:\s| ))(?:\*\*)?{index}{suffix}"
    return [(0, re.compile(rf"(?i:answer)[\:].{{0,50}}?{word}")),
            (50, re.compile(rf"(?i:answer).{{0,50}}?{word}")),
            (100, re.compile(rf"^(?:\*\*)?{index}{suffix}")),
            (150, re.compile(word)),
            (200, re.compile(index))]


def extract_letter(text: str, letters: str = LETTERS) -> Optional[str]:
    """The letter `text` answers with (lighteval's order: first priority that matches, rightmost match in
    it), or None."""
    for _, pattern in _patterns(letters):
        matches = list(pattern.finditer(text))
        if matches:
            best = max(matches, key=lambda m: (m.end(), -m.start()))
            return best.group("indices")
    return None


def answer_letter(t: TraceParts, letters: str = LETTERS) -> Optional[str]:
    """The letter of the answer after the thinking (None without a closed thinking or a letter)."""
    if not t.thinking_closed or not t.answer.strip():
        return None
    return extract_letter(t.answer, letters)


def check_choice(t: TraceParts, **_) -> Verdict:
    if not is_choice_reference(t.reference):
        return False, "not a multiple-choice problem: the reference names no right letter"
    right, letters = parse_choice_reference(str(t.reference))
    if not t.thinking_closed:
        return False, "no answer: the thinking never closed (letters named while thinking are not taken)"
    if not t.answer.strip():
        return False, "empty answer after </think>"
    got = extract_letter(t.answer, letters)
    if got is None:
        return False, f"no letter ({', '.join(letters)}) in the answer"
    if got != right:
        return False, f"answered {got}, the right letter is {right}"
    return True, f"answered {got}, right"
