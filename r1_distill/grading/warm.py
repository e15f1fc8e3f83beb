"""Imported by the grading fork server only (pool.PRELOAD): one answer of each common shape read and
compared once, so that math-verify's and sympy's lazy set-up (the LaTeX parser, sympy's caches and
imports) happens once there and every forked worker starts warm, instead of each paying it again."""

from .answers import check_math_answer

for _reference, _answer in [("\\frac{1}{2}", "0.5"), ("-2,1", "1,-2"), ("(3,4]", "3 < x \\le 4"), ("x=5", "5"),
                            ("2\\sqrt{5}", "\\sqrt{20}"), ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "(1,2)"),
                            ("1+2i", "2i+1"), ("18", "Ann has \\$18.")]:
    check_math_answer(f"\\boxed{{{_answer}}}", _reference)
