"""Is a final answer right? math-verify reads and compares; this module adds only what it lacks.

math-verify (`parse` with its `LatexExtractionConfig`/`ExprExtractionConfig`, then `verify`) already
handles the shapes MATH and GSM8K answers come in: integers with thousands separators (`58,500`,
`10,\\!080`) against comma lists of solutions (`-2,1` is the set {-2, 1}, order-free), tuples and
intervals (ordered, open or closed ends), unions, `x = 5`, `y = 2x + 3`, inequalities against
intervals (`allow_set_relation_comp`), units and words after a number (`18 \\text{ dollars}`), `\\$`,
percent, degrees, decimals against fractions (to 6 places), radicals, complex numbers, matrices and
the last sentence of an unboxed answer ("Ann has 12 pens."). What it provably gets wrong, and what
is added here (each pinned by tests/test_grading_shapes.py):

* words: it reads `east` and `seat` as products of single-letter symbols, so anagrams match
  (e*a*s*t = s*e*a*t). Word answers compare as words.
* base-b numerals: it drops the subscript, so `204_6` equals the reference `204_5`. The digits and,
  where the answer writes one, the base must agree.
* small decimals: it rounds to 6 places, so `0.0000673` equals the reference `.0000672`. Numbers
  are compared to as many places as the reference writes, and never fewer than 6.
* Unicode a model may write instead of LaTeX (`°`, `π`, `−`, `√`, `×`): it does not read them.
* complex numbers: whether `i` is the imaginary unit is decided from the text, so `-2 + 7i` and
  `7 i - 2` compare unequal. The space goes before math-verify reads either.

Grading runs inside a worker process of :mod:`r1_distill.grading.pool`, whose hard wall limit bounds
what math-verify's own SIGALRM time limits cannot interrupt (big-integer arithmetic in C).
"""

from __future__ import annotations

import re
from typing import Optional

from .parts import TraceParts, Verdict, last_boxed

PARSE_TIMEOUT_S = 2
VERIFY_TIMEOUT_S = 2

_UNICODE = {"°": "^\\circ", "π": "\\pi", "−": "-", "×": "\\times", "·": "\\cdot", "√": "\\sqrt", "∞": "\\infty",
            "≤": "\\le", "≥": "\\ge", "∪": "\\cup"}


def _configs():
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    # the reference: math-verify's defaults; the answer: a \boxed{} wins over "the answer is" phrases
    return (LatexExtractionConfig(), ExprExtractionConfig()), (LatexExtractionConfig(boxed_match_priority=0),
                                                              ExprExtractionConfig())


_IMAGINARY_RE = re.compile(r"(\d)\s*(?:\\cdot\s*|\\,\s*)?i\b")


def _ascii_math(text: str) -> str:
    for char, latex in _UNICODE.items():
        text = text.replace(char, latex)
    # math-verify decides from the text whether `i` is the imaginary unit, by a pattern that `7i`
    # matches and `7 i` does not: `-2 + 7i` and `7 i - 2` then compare unequal. One spelling for both.
    return _IMAGINARY_RE.sub(r"\1i", text)


def read_reference(reference: str) -> list:
    from math_verify import parse

    gold_config, _ = _configs()
    reference = _ascii_math(reference)
    gold = parse(f"\\boxed{{{reference}}}", gold_config, parsing_timeout=PARSE_TIMEOUT_S)
    return gold or parse(f"${reference}$", gold_config, parsing_timeout=PARSE_TIMEOUT_S)


def read_answer(answer: str) -> list:
    from math_verify import parse

    _, answer_config = _configs()
    return parse(_ascii_math(answer), answer_config, parsing_timeout=PARSE_TIMEOUT_S)


def decimal_places(reference: str) -> int:
    """The most digits after a decimal point in the reference (`.0000672`: 7)."""
    return max((len(m) for m in re.findall(r"\.(\d+)", reference)), default=0)


def equal(gold: list, pred: list, float_rounding: int = 6) -> bool:
    from math_verify import verify

    return verify(gold, pred, float_rounding=float_rounding, allow_set_relation_comp=True,
                  timeout_seconds=VERIFY_TIMEOUT_S)


# -- what math-verify lacks: words ----------------------------------------------------------------
_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")


def _unwrap_text(latex: str) -> str:
    previous = None
    while previous != latex:
        previous, latex = latex, _TEXT_CMD.sub(r"\1", latex)
    return latex


def _words(latex: str) -> Optional[str]:
    """'east' for `\\text{East}`, 'b' for `\\text{(B)}` or `(B)`: the answer as lower-case words, or
    None when it is not made of words only."""
    text = _unwrap_text(latex).replace("$", "").replace("\\", " ").strip().rstrip(".").strip()
    choice = re.fullmatch(r"\(\s*([A-Za-z])\s*\)", text)
    if choice:
        return choice.group(1).lower()
    if not re.fullmatch(r"[A-Za-z][A-Za-z' -]*", text):
        return None
    return " ".join(text.lower().split())


def word_reference(reference: str) -> Optional[str]:
    """A reference that is a word or a choice: wrapped in \\text{} (`\\text{Evelyn}`, `\\text{(B)}`),
    a letter in parentheses, or a word of three or more letters (`east`; `xy` stays algebra)."""
    ref = reference.strip()
    words = _words(ref)
    if words is None:
        return None
    wrapped = _TEXT_CMD.search(ref) is not None or re.fullmatch(r"\(\s*[A-Za-z]\s*\)", ref) is not None
    return words if wrapped or len(words.replace(" ", "")) >= 3 else None


def _final_answer_text(answer: str) -> str:
    boxed = last_boxed(answer)
    if boxed is not None:
        return boxed
    lines = [line for line in answer.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    m = re.search(r"(?:answer|result)\s*(?:is|:)\s*(.+)$", last, flags=re.IGNORECASE)
    return (m.group(1) if m else last).strip().strip("$").strip()


def check_words(answer: str, expected: str, reference: str) -> Verdict:
    got_text = _final_answer_text(answer)
    got = _words(got_text)
    if got is None:
        return False, f"answer {got_text[:80]!r} is not the word answer {reference!r}"
    ok = got == expected
    return ok, f"answer {_short(got_text)!r} {'matches' if ok else 'does not match'} reference {reference!r}"


# -- what math-verify lacks: base-b numerals --------------------------------------------------------
_BASE_RE = re.compile(r"^\s*\(?\s*([0-9A-Za-z]+)\s*\)?\s*_\s*\{?\s*(\d+)\s*\}?\s*$")
_BASE_WORDS_RE = re.compile(r"^\s*([0-9A-Za-z]+)\s*\(?\s*(?:in\s+)?base\s*(\d+)\s*\)?\s*$", re.IGNORECASE)


def base_numeral(latex: str) -> Optional[tuple[str, Optional[int]]]:
    """('204', 5) for `204_5`, `204_{5}` or `(204)_5`; ('204', None) for a bare `204`."""
    text = _unwrap_text(latex).replace("$", "").strip().rstrip(".")
    m = _BASE_RE.match(text) or _BASE_WORDS_RE.match(text)
    if m:
        return m.group(1).upper(), int(m.group(2))
    if re.fullmatch(r"[0-9A-Za-z]+", text):
        return text.upper(), None
    return None


def check_base_numeral(answer: str, digits: str, base: int, reference: str) -> Verdict:
    got_text = _final_answer_text(answer)
    got = base_numeral(got_text)
    if got is None:
        return False, f"answer {got_text[:80]!r} is not a base-{base} numeral"
    got_digits, got_base = got
    if got_base is not None and got_base != base:
        return False, f"answer {got_text!r} is in base {got_base}, the reference {reference!r} in base {base}"
    ok = got_digits == digits
    return ok, f"answer {_short(got_text)!r} {'matches' if ok else 'does not match'} reference {reference!r}"


# -- the check ------------------------------------------------------------------------------------
def check_math_answer(answer: str, reference: str) -> Verdict:
    reference = reference.strip()
    words = word_reference(reference)
    if words is not None:
        return check_words(answer, words, reference)
    base = _BASE_RE.match(_unwrap_text(reference).replace("$", ""))
    if base:
        return check_base_numeral(answer, base.group(1).upper(), int(base.group(2)), reference)
    gold = read_reference(reference)
    if not gold:
        return False, f"the reference {reference!r} cannot be parsed"
    pred = read_answer(answer)
    if not pred:
        return False, "no parsable final answer"
    ok = equal(gold, pred, float_rounding=max(6, decimal_places(reference)))
    shown = last_boxed(answer) or (pred[-1] if isinstance(pred[-1], str) else str(pred[0]))
    return ok, f"answer {_short(shown)!r} {'matches' if ok else 'does not match'} reference {reference!r}"


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_correctness(t: TraceParts, sandbox: str = "local") -> Verdict:
    """The final answer after </think> against the reference: math through math-verify, code problems
    (a reference holding tests, see grading.code) by running the tests in the sandbox `sandbox` names
    ("local", "piston:URL" or "e2b"; math ignores it), multiple choice by its letter (grading.choice)."""
    from .code import check_code, is_code_reference

    if t.reference is None or str(t.reference).strip() == "":
        return False, "no reference answer (pass --reference FILE)"
    if is_code_reference(str(t.reference)):
        return check_code(t, sandbox=sandbox)
    from .choice import check_choice, is_choice_reference

    if is_choice_reference(str(t.reference)):
        return check_choice(t)
    if not t.answer.strip():
        return False, "empty answer after </think>" if t.thinking_closed else "no answer: the thinking never closed"
    try:
        return check_math_answer(t.answer, str(t.reference))
    except Exception as exc:  # hostile LaTeX, sympy errors: a failed check with its reason, never a crash
        return False, f"math-verify failed: {type(exc).__name__}"


# -- cons@K: which answers are the same answer ------------------------------------------------------
def answer_groups(answers: list[Optional[str]]) -> list[Optional[int]]:
    """For each sample's answer text, the index of the first answer it is mathematically equal to
    (None for a sample without a final answer), so that `0.5` and `\\frac12` vote together."""
    parsed: list[Optional[list]] = []
    keys: list[Optional[int]] = []
    for i, text in enumerate(answers):
        boxed = last_boxed(text) if text else None
        if boxed is None:
            parsed.append(None)
            keys.append(None)
            continue
        try:
            words = _words(boxed)
            mine = [words] if words and len(words) >= 3 else read_reference(boxed) or [boxed.strip()]
        except Exception:
            mine = [boxed.strip()]
        parsed.append(mine)
        group = i
        for j in range(i):
            if keys[j] == j and parsed[j] is not None and _same(parsed[j], mine):
                group = j
                break
        keys.append(group)
    return keys


def _same(a: list, b: list) -> bool:
    if all(isinstance(x, str) for x in a + b):
        return any(x.strip() == y.strip() for x in a for y in b)
    try:
        return equal(a, b) and equal(b, a)
    except Exception:
        return False
