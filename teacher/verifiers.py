"""Rule-based checks of a reasoning trace, and the same checks as GRPO reward functions.

Each check takes a trace's parts and returns ``(passed, reason)``. They live in a registry
(:data:`VERIFIERS`) so new ones (a code verifier running tests in a sandbox, say) plug in by name.
:func:`reward_function` wraps any of them in TRL's ``reward_funcs`` signature: one implementation,
two uses (``r1-distill filter`` and ``r1-distill grpo``).
"""

from __future__ import annotations

import operator
import re
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Optional

from r1_distill.reasoning import split_reasoning


@dataclass(frozen=True)
class TraceParts:
    completion: str
    reasoning: str
    answer: str
    thinking_closed: bool
    reference: Optional[str] = None
    finish_reason: Optional[str] = None
    completion_tokens: Optional[int] = None

    @classmethod
    def from_text(cls, completion: str, reference: str | None = None, **kw) -> "TraceParts":
        parts = split_reasoning(completion)
        return cls(completion=completion, reasoning=parts.reasoning, answer=parts.answer,
                   thinking_closed=parts.thinking_closed, reference=reference, **kw)


Verdict = tuple[bool, str]

# -- correctness ----------------------------------------------------------------------------------
_INT_RE = re.compile(r"^[+-]?\d[\d,]*$")
_NUMBER_RE = re.compile(r"[+-]?\d[\d,]*(?:\.\d+)?")


def last_boxed(text: str) -> Optional[str]:
    """Content of the last \\boxed{...} (or \\fbox{...}), braces balanced."""
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    start = text.find("{", idx)
    if start < 0:
        return None
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1: i]
    return None


def _as_integer(text: str) -> Optional[int]:
    cleaned = text.replace("$", "").replace("\\!", "").replace("\\,", "").replace(" ", "").replace("\\text{", "").rstrip("}")
    cleaned = cleaned.rstrip(".")
    m = re.fullmatch(r"[+-]?\d[\d,]*(?:\.0+)?", cleaned)
    if not m:
        return None
    return int(float(cleaned.replace(",", "")))


def check_integer_answer(answer: str, reference: str) -> Verdict:
    expected = int(reference.replace(",", ""))
    boxed = last_boxed(answer)
    if boxed is not None:
        got = _as_integer(boxed)
        if got is None:
            return False, f"boxed answer {boxed!r} is not an integer"
    else:
        numbers = _NUMBER_RE.findall(answer)
        if not numbers:
            return False, "no number in the answer"
        try:
            got = int(float(numbers[-1].replace(",", "")))
        except ValueError:
            return False, f"cannot read {numbers[-1]!r}"
    return (got == expected, f"answer {got} {'=' if got == expected else '!='} reference {expected}")


def _math_verify_kwargs() -> dict:
    # math-verify's time limits use SIGALRM, which exists only in the main thread; elsewhere the
    # caller (a worker process) is responsible for the wall-clock limit.
    if threading.current_thread() is threading.main_thread():
        return {}
    return {"parsing_timeout": None}


def check_math_answer(answer: str, reference: str, timeout_s: int = 5) -> Verdict:
    from math_verify import parse, verify

    kw = _math_verify_kwargs()
    gold = parse(f"\\boxed{{{reference}}}", **kw)
    if not gold:
        gold = parse(f"${reference}$", **kw)
    if not gold:
        return False, f"the reference {reference!r} cannot be parsed"
    pred = parse(answer, **kw)
    if not pred:
        return False, "no parsable final answer"
    ok = verify(gold, pred, timeout_seconds=timeout_s if not kw else None)
    shown = last_boxed(answer) or (pred[-1] if isinstance(pred[-1], str) else str(pred[0]))
    return (ok, f"answer {shown!r} {'matches' if ok else 'does not match'} reference {reference!r}")


def check_correctness(t: TraceParts) -> Verdict:
    if t.reference is None or str(t.reference).strip() == "":
        return False, "no reference answer (pass --reference FILE)"
    if not t.answer.strip():
        return False, "empty answer after </think>" if t.thinking_closed else "no answer: the thinking never closed"
    reference = str(t.reference).strip()
    if _INT_RE.match(reference):
        return check_integer_answer(t.answer, reference)
    try:
        return check_math_answer(t.answer, reference)
    except Exception as exc:  # hostile LaTeX, sympy errors, time-outs: a failed check, never a crash
        return False, f"math-verify failed: {type(exc).__name__}"


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
    if not allow_code and "```" in t.completion:
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


VERIFIERS: dict[str, Callable[..., Verdict]] = {
    "format": check_format,
    "correctness": check_correctness,
    "language": check_language,
    "readability": check_readability,
    "repetition": check_repetition,
    "length": check_length,
    "arithmetic": check_arithmetic,  # opt-in in `filter` (--check-arithmetic); a reward by name in `grpo`
}


def register_verifier(name: str, fn: Callable[..., Verdict]) -> None:
    VERIFIERS[name] = fn


# -- the same checks as TRL reward functions -------------------------------------------------------
def _completion_text(completion) -> str:
    # TRL passes strings for standard datasets and message lists for conversational ones
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


def reward_function(name: str, **options) -> Callable[..., list[float]]:
    """TRL `reward_funcs` form: fn(prompts, completions, **dataset_columns) -> list[float].
    The reference answer comes from the dataset column `answer` (or `reference_answer`)."""
    check = VERIFIERS[name]

    def reward(prompts=None, completions=None, **columns) -> list[float]:
        refs = columns.get("answer") or columns.get("reference_answer") or [None] * len(completions)
        scores = []
        for completion, ref in zip(completions, refs):
            parts = TraceParts.from_text(_completion_text(completion), reference=ref)
            passed, _ = check(parts, **options)
            scores.append(1.0 if passed else 0.0)
        return scores

    reward.__name__ = f"{name}_reward"
    return reward


def repetition_penalty_reward(n: int = 8, scale: float = 1.0) -> Callable[..., list[float]]:
    """A graded penalty (0 for fresh text, down to -scale for a loop), as open-r1's."""

    def reward(prompts=None, completions=None, **columns) -> list[float]:
        return [-scale * repetition_ratio(_completion_text(c), n) for c in completions]

    reward.__name__ = "repetition_penalty_reward"
    return reward
