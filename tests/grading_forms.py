"""Equivalent and altered forms of a reference answer, by its shape, for tests/test_grading_shapes.py.

Every form is a different string from the reference: a rewrite a model might write (another order,
`x = ...`, units, `\\$`, a fraction for a decimal, `\\left(`, `\\sqrt{20}` for `2\\sqrt{5}`, ...), or an
answer that is wrong in the way models are wrong (an element dropped, an interval end flipped, a tuple
reordered, a base changed, an anagram of a word, a digit off).
"""

from __future__ import annotations

import re
from fractions import Fraction

import sympy
from sympy import FiniteSet, Integer, Interval, Matrix, Rational, Tuple, Union

from r1_distill.grading.answers import _BASE_RE, _unwrap_text, read_reference, word_reference

OTHER_WORDS = ["west", "neither", "circle", "Maria"]


def _l(x) -> str:
    return sympy.latex(x)


def _doubled(x) -> str:
    return f"\\frac{{{_l(2 * x)}}}{{2}}"


def _dedupe(reference: str, forms: list[str]) -> list[str]:
    seen, out = {reference.replace(" ", "")}, []
    for f in forms:
        key = f.replace(" ", "")
        if f and key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _alter_digit(text: str) -> str:
    m = re.search(r"\d", text)
    return text[: m.start()] + str((int(m.group()) + 1) % 10) + text[m.end():]


def _integer(n: int, reference: str) -> tuple[list[str], list[str]]:
    eq = [f"x = {n}", f"{n}.0", f"\\frac{{{2 * n}}}{{2}}", f"{n} \\text{{ units}}"]
    if abs(n) >= 1000:
        eq.insert(0, f"{n:,}".replace(",", "{,}"))
        eq.insert(0, f"{n:,}")
    if "circ" in reference:
        eq = [f"{n}^{{\\circ}}", f"{n} \\text{{ degrees}}", f"{n}°"] + eq
    if "$" in reference:
        eq = [f"\\${n}", f"{n} \\text{{ dollars}}"] + eq
    return eq, [str(n + 1), str(10 * n if n else 7)]


def _decimal(reference: str, value) -> tuple[list[str], list[str]]:
    m = re.search(r"-?\d*\.\d+", _unwrap_text(reference))
    text = m.group() if m else str(value)
    frac = Fraction(text)
    places = len(text.split(".")[1])
    eq = [f"\\frac{{{frac.numerator}}}{{{frac.denominator}}}", f"{text}0", text if text[0].isdigit() else text.replace(".", "0.", 1),
          f"{text} \\text{{ units}}"]
    if "$" in reference:
        eq = [f"\\${text}", f"{text} \\text{{ dollars}}"] + eq
    bumped = frac + Fraction(1, 10 ** places)
    return eq, [f"{float(bumped):.{places}f}", f"{float(frac * 10):g}"]


def _rational(q) -> tuple[list[str], list[str]]:
    p, d = int(q.p), int(q.q)
    eq = [f"{p}/{d}", f"\\dfrac{{{2 * p}}}{{{2 * d}}}", f"\\frac{{{p}}}{{{d}}}"]
    f = Fraction(p, d)
    rest = d
    for prime in (2, 5):
        while rest % prime == 0:
            rest //= prime
    eq.append(f"{float(f):.12g}" if rest == 1 else f"{float(f):.10f}")
    if abs(p) > d:
        whole, part = divmod(abs(p), d)
        eq.append(f"{'-' if p < 0 else ''}{whole}\\frac{{{part}}}{{{d}}}")
    return eq, [f"\\frac{{{p + 1}}}{{{d}}}", f"\\frac{{{-p}}}{{{d}}}"]


def _interval(iv: Interval) -> str:
    left = "(" if iv.left_open else "["
    right = ")" if iv.right_open else "]"
    return f"\\left{left}{_l(iv.start)}, {_l(iv.end)}\\right{right}"


def _inequality(iv: Interval) -> str:
    parts = []
    left, right = ("<" if iv.left_open else "\\le"), ("<" if iv.right_open else "\\le")
    if iv.start.is_finite:
        parts.append(f"{_l(iv.start)} {left} ")
    parts.append("x")
    if iv.end.is_finite:
        parts.append(f" {right} {_l(iv.end)}")
    return "".join(parts)


def _flip(iv: Interval) -> Interval:
    if iv.start.is_finite:
        return Interval(iv.start, iv.end, not iv.left_open, iv.right_open)
    return Interval(iv.start, iv.end, iv.left_open, not iv.right_open)


def _shift(iv: Interval) -> Interval:
    if iv.end.is_finite:
        return Interval(iv.start, iv.end + 1, iv.left_open, iv.right_open)
    return Interval(iv.start - 1, iv.end, iv.left_open, iv.right_open)


def _expr_forms(e) -> tuple[list[str], list[str]]:
    eq = [_l(e), f"\\frac{{2\\left({_l(e)}\\right)}}{{2}}", _l(sympy.expand(e)), f"\\left({_l(e)}\\right)",
          _l(sympy.factor(e))]
    if not e.free_symbols:
        eq.append(f"{complex(e.evalf(15)).real:.12g}" if e.is_real else _l(sympy.expand_complex(e)))
    else:
        eq.append(f"\\left({_l(e * 3)}\\right) \\cdot \\frac{{1}}{{3}}")
    alt = [_l(e + 1), _l(2 * e) if e != 0 else "1"]
    return eq, alt


def forms(reference: str) -> tuple[list[str], list[str]]:
    """(equivalent forms, altered forms) of a reference answer, none equal to it as a string."""
    eq, alt = _forms(reference.strip())
    return _dedupe(reference, eq), _dedupe(reference, alt)


def _forms(ref: str) -> tuple[list[str], list[str]]:
    words = word_reference(ref)
    if words is not None:
        if len(words) == 1:
            letter = words.upper()
            other = "A" if letter != "A" else "B"
            return [letter, f"({letter})", f"\\text{{{letter}}}", f"\\textbf{{({letter})}}"], [f"({other})", f"\\text{{{other}}}"]
        plain = _unwrap_text(ref).strip()
        anagram = plain[::-1] if plain[::-1].lower() != plain.lower() else plain[1:] + plain[0]
        other = next(w for w in OTHER_WORDS if w.lower() != plain.lower())
        return [plain, f"\\text{{{plain.capitalize()}}}", f"\\mathrm{{{plain}}}", f"\\textbf{{{plain.lower()}}}"], \
            [anagram, f"\\text{{{other}}}"]
    base = _BASE_RE.match(_unwrap_text(ref))
    if base:
        digits, b = base.group(1), int(base.group(2))
        return [f"{digits}_{{{b}}}", f"({digits})_{b}", digits, f"{digits} \\text{{ (base {b})}}"], [f"{_alter_digit(digits)}_{{{b}}}", f"{digits}_{{{b + 1}}}"]
    gold = read_reference(ref)
    obj = gold[0]
    if isinstance(obj, Integer) or (isinstance(obj, sympy.Mul) and obj.is_Integer):
        return _integer(int(obj), ref)
    if "%" in ref:
        n = Fraction(re.search(r"-?\d*\.?\d+", ref).group())
        shown = f"{float(n):g}"
        return [f"{shown} \\text{{ percent}}", f"{float(n / 100):g}", f"{shown}\\,\\%"], \
            [f"{float(n + 1):g}\\%", f"{float(n * 10):g}\\%"]
    if isinstance(obj, sympy.Float):
        return _decimal(ref, obj)
    if isinstance(obj, Rational):
        return _rational(obj)
    if isinstance(obj, FiniteSet):
        items = list(obj.args)
        rev = ", ".join(_l(x) for x in reversed(items))
        eq = [rev, f"\\{{{rev}\\}}", ", ".join(f"x = {_l(x)}" for x in items), " \\text{ and } ".join(_l(x) for x in items)]
        dropped = ", ".join(_l(x) for x in items[:-1]) if len(items) > 1 else f"{_l(items[0])}, {_l(items[0] + 1)}"
        bumped = ", ".join(_l(x) for x in [items[0] + 1] + items[1:])
        return eq, [dropped, bumped]
    if isinstance(obj, Tuple):
        items = list(obj.args)
        eq = [f"\\left({', '.join(_l(x) for x in items)}\\right)", f"({','.join(_l(x) for x in items)})",
              f"\\left( {', '.join(_l(sympy.nsimplify(x)) for x in items)} \\right)", f"(\\, {', '.join(_l(x) for x in items)} \\,)",
              "(" + ", ".join(_doubled(x) for x in items) + ")"]
        i = next((k for k in range(1, len(items)) if items[k] != items[0]), None)
        swapped = items[:]
        if i is not None:
            swapped[0], swapped[i] = swapped[i], swapped[0]
        else:
            swapped[0] = swapped[0] * 2 + 1
        bumped = [items[0] + 1] + items[1:]
        return eq, [f"({', '.join(_l(x) for x in swapped)})", f"({', '.join(_l(x) for x in bumped)})"]
    if isinstance(obj, Interval):
        return [_interval(obj), f"x \\in {_interval(obj)}", _inequality(obj), _interval(obj).replace("\\left", "").replace("\\right", "")], [_interval(_flip(obj)), _interval(_shift(obj))]
    if isinstance(obj, Union):
        parts = list(obj.args)
        rev = " \\cup ".join(_interval(p) for p in reversed(parts))
        fwd = " \\cup ".join(_interval(p) for p in parts)
        flipped = " \\cup ".join(_interval(_flip(p) if k == 0 else p) for k, p in enumerate(parts))
        shifted = " \\cup ".join(_interval(_shift(p) if k == len(parts) - 1 else p) for k, p in enumerate(parts))
        return [rev, fwd, f"x \\in {rev}"], [flipped, shifted]
    if isinstance(obj, sympy.MatrixBase):
        def matrix(env, cell, m=obj):
            rows = m.tolist()
            return f"\\begin{{{env}}} " + " \\\\ ".join(" & ".join(cell(x) for x in r) for r in rows) + f" \\end{{{env}}}"

        def dec(x):
            x = sympy.nsimplify(x)
            if x.is_Integer:
                return f"{int(x)}.0"
            return f"{float(x):.10g}" if x.is_Rational and re.fullmatch(r"-?\d+(\.\d+)?", f"{float(x):.10g}") and \
                Fraction(f"{float(x):.10g}") == Fraction(int(x.p), int(x.q)) else _l(x)

        bumped = Matrix(obj)
        bumped[0] = bumped[0] + 1
        negated = Matrix(obj)
        k = max(i for i in range(len(negated)) if negated[i] != 0)
        negated[k] = -negated[k]
        return [matrix("bmatrix", _l), matrix("pmatrix", dec), matrix("pmatrix", lambda x: f"\\dfrac{{{_l(2 * x)}}}{{2}}")], \
            [matrix("pmatrix", _l, bumped), matrix("bmatrix", _l, negated)]
    if isinstance(obj, sympy.Eq):
        lhs, rhs = obj.lhs, obj.rhs
        if isinstance(rhs, (Interval, Union)):
            inner = _interval(rhs) if isinstance(rhs, Interval) else " \\cup ".join(_interval(p) for p in rhs.args)
            return [inner, f"{_l(lhs)} \\in {inner}", _inequality(rhs) if isinstance(rhs, Interval) else inner], \
                [_interval(_flip(rhs)), _interval(_shift(rhs))]
        eq = [f"{_l(rhs)} = {_l(lhs)}", f"{_l(lhs)} = {_l(sympy.expand(rhs))}", f"{_l(lhs - rhs)} = 0",
              f"{_l(-lhs)} = {_l(-rhs)}"]
        if isinstance(lhs, sympy.Symbol):  # an assignment: the value is the answer
            eq.append(_l(rhs))
        else:  # an equation (a line, a plane): the same equation scaled
            eq.append(f"{_l(2 * lhs)} = {_l(2 * rhs)}")
        return eq, [f"{_l(lhs)} = {_l(rhs + 1)}", f"{_l(lhs + 2)} = {_l(rhs)}"]
    return _expr_forms(obj)
