"""The checks on a trace's form and process: format, language, readability, repetition, length and
arithmetic steps. Each takes a TraceParts and returns (passed, reason)."""

from __future__ import annotations

import operator
import re
import unicodedata
from collections import Counter
from typing import Optional

from .parts import TraceParts, Verdict


# -- arithmetic steps ------------------------------------------------------------------------------
# A step "a op b = c" between plain numbers. Not inside a longer expression ("10 - 3 - 2 = 5" is not
# "3 - 2 = 5"), not a power, not modular or remainder arithmetic: those are skipped, never guessed at.
_OPERATORS = {"+": operator.add, "-": operator.sub, "−": operator.sub, "*": operator.mul, "×": operator.mul,
              "·": operator.mul, "\\times": operator.mul, "\\cdot": operator.mul, "/": operator.truediv,
              "÷": operator.truediv}
_STEP_RE = re.compile(
    r"(?<![\w.,^)\]}+\-−*×·/÷=])(?<![+\-−*×·/÷=^][ \t])"
    r"(\d+(?:\.\d+)?)[ \t]*(\+|-|−|\*|×|·|\\times|\\cdot|/|÷)[ \t]*(\d+(?:\.\d+)?)[ \t]*=[ \t]*([-−]?\d+(?:\.\d+)?)"
    r"(?![.,]?\d)(?![ \t]*(?:[+\-−*×·/÷^%(]|\\|mod\b|remainder\b|r\b|R\b|[a-zA-Z]*\^))")


def arithmetic_steps(text: str) -> list[tuple[str, bool]]:
    """Every plain "a op b = c" step in `text`, with whether it holds (to the decimals written)."""
    steps = []
    for m in _STEP_RE.finditer(text):
        a, op, b, c = m.groups()
        if float(b) == 0 and _OPERATORS[op] is operator.truediv:
            continue
        value = _OPERATORS[op](float(a), float(b))
        shown = float(c.replace("−", "-"))
        decimals = len(c.split(".")[1]) if "." in c else 0
        steps.append((m.group(0), abs(value - shown) < (10 ** -decimals if decimals else 1e-9)))
    return steps


def check_arithmetic(t: TraceParts) -> Verdict:
    """Process check: the final answer can be right by two slips that cancel (7 + 6 = 12, 12 + 1 = 14),
    which no outcome check sees."""
    steps = arithmetic_steps(t.reasoning + "\n" + t.answer)
    wrong = [s for s, ok in steps if not ok]
    if wrong:
        return False, f"{len(wrong)} of {len(steps)} arithmetic steps are wrong: " + "; ".join(wrong[:3])
    return True, f"{len(steps)} arithmetic steps, all hold" if steps else "no plain arithmetic steps to check"


# -- format ---------------------------------------------------------------------------------------
def check_format(t: TraceParts) -> Verdict:
    if not t.thinking_closed:
        return False, "no </think>: the reasoning block never closed"
    if t.completion.count("</think>") > 1:
        return False, "more than one </think>"
    if "<think>" in t.answer:
        return False, "a second <think> block in the answer"
    if not t.reasoning.strip():
        return False, "empty reasoning"
    if not t.answer.strip():
        return False, "empty answer after </think>"
    return True, "one reasoning block closed by </think>, then an answer"


# -- readability: language consistency -------------------------------------------------------------
def _script(ch: str) -> Optional[str]:
    if not ch.isalpha():
        return None
    if ch.isascii():
        return "Latin"
    name = unicodedata.name(ch, "")
    for script in ("LATIN", "CJK", "HIRAGANA", "KATAKANA", "HANGUL", "CYRILLIC", "ARABIC", "HEBREW", "GREEK",
                   "DEVANAGARI", "THAI"):
        if name.startswith(script) or f" {script} " in f" {name} ":
            return {"CJK": "Han", "HIRAGANA": "Han", "KATAKANA": "Han"}.get(script, script.title())
    return "Other"


def script_shares(text: str) -> dict[str, float]:
    # LaTeX commands and Greek letters in math are not a language switch
    text = re.sub(r"\\[a-zA-Z]+|\$[^$]*\$", " ", text)
    counts = Counter(s for s in map(_script, text) if s and s != "Greek")
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


def check_language(t: TraceParts, expected: str = "Latin", min_share: float = 0.95) -> Verdict:
    shares = script_shares(t.reasoning + "\n" + t.answer)
    if not shares:
        return True, "no letters to judge"
    share = shares.get(expected, 0.0)
    if share < min_share:
        others = ", ".join(f"{k} {v:.0%}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1]) if k != expected)
        return False, f"mixed languages: {expected} {share:.0%} of letters (others: {others})"
    return True, f"{expected} {share:.0%} of letters"


def check_readability(t: TraceParts, max_paragraph_chars: int = 3000, allow_code: bool = False) -> Verdict:
    longest = max((len(p) for p in re.split(r"\n\s*\n", t.reasoning)), default=0)
    if longest > max_paragraph_chars:
        return False, f"a paragraph of {longest} characters (limit {max_paragraph_chars})"
    from .code import is_code_reference

    if not allow_code and "```" in t.completion and not is_code_reference(t.reference or ""):
        return False, "a code block in a math trace"
    return True, f"longest paragraph {longest} characters"


# -- repetition -----------------------------------------------------------------------------------
def repetition_ratio(text: str, n: int = 8) -> float:
    """Share of word n-grams that repeat an earlier one: 0 for fresh text, near 1 for a loop."""
    words = text.split()
    if len(words) < n * 2:
        return 0.0
    grams = [tuple(words[i: i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)


def check_repetition(t: TraceParts, max_ratio: float = 0.3, n: int = 8) -> Verdict:
    ratio = repetition_ratio(t.reasoning + " " + t.answer, n)
    return (ratio <= max_ratio, f"{n}-gram repetition {ratio:.2f} (limit {max_ratio})")


# -- truncation and length ------------------------------------------------------------------------
def check_length(t: TraceParts, min_tokens: int = 0, max_tokens: Optional[int] = None) -> Verdict:
    if t.finish_reason == "length":
        return False, "truncated: the token limit was reached (finish_reason length)"
    n = t.completion_tokens if t.completion_tokens is not None else len(t.completion.split())
    if n < min_tokens:
        return False, f"{n} tokens, under the minimum {min_tokens}"
    if max_tokens is not None and n > max_tokens:
        return False, f"{n} tokens, over the maximum {max_tokens}"
    return True, f"{n} tokens, finished ({t.finish_reason or 'unknown'})"
