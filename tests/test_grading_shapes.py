"""The correctness check on every answer shape: every MATH-500 and GSM8K reference written in at least
three equivalent forms and two altered ones, checked both ways (the form graded against the
reference, and the reference graded against the form), in real math-verify on worker processes."""

import json
import time

import pytest

from grading_forms import forms
from r1_distill.grading import TraceParts, grade
from r1_distill.grading.answers import check_math_answer
from r1_distill.grading.pool import GradingPool


def _completion(solution: str, answer: str) -> str:
    return f"<think>{solution}</think>\n\nThe final answer is $\\boxed{{{answer}}}$."


@pytest.mark.parametrize("name", ["math500", "gsm8k_test"])
def test_every_reference_in_equivalent_and_altered_forms(name, data_dir):
    rows = [json.loads(line) for line in (data_dir / f"{name}.jsonl").read_text().splitlines()]
    cases = []  # (reference, answer, should pass, row id)
    for r in rows:
        equivalent, altered = forms(r["answer"])
        assert len(equivalent) >= 3 and len(altered) >= 2, (r["answer"], equivalent, altered)
        for form in equivalent:
            cases += [(r["answer"], form, True, r["id"]), (form, r["answer"], True, r["id"])]
        for form in altered:
            cases += [(r["answer"], form, False, r["id"]), (form, r["answer"], False, r["id"])]
    items = [TraceParts.from_text(_completion("Work.", answer), reference=ref) for ref, answer, _, _ in cases]
    with GradingPool() as pool:
        verdicts = grade(items, ["correctness"], pool=pool)
        seconds = [s["correctness"] for s in pool.seconds]
    wrong = [(c, v["correctness"][1]) for c, v in zip(cases, verdicts) if v["correctness"][0] != c[2]]
    accepted_equivalent = sum(v["correctness"][0] for c, v in zip(cases, verdicts) if c[2])
    accepted_altered = sum(v["correctness"][0] for c, v in zip(cases, verdicts) if not c[2])
    n_equivalent = sum(c[2] for c in cases)
    print(f"{name}: {len(rows)} references, {n_equivalent} equivalent and {len(cases) - n_equivalent} altered checks; "
          f"accepted {accepted_equivalent} and {accepted_altered}; slowest {max(seconds):.2f} s")
    assert not wrong, f"{len(wrong)} of {len(cases)} graded wrong, e.g. {wrong[:5]}"
    assert max(seconds) < 2.0, f"an item took {max(seconds):.2f} s"


def test_the_forms_differ_from_the_reference_and_cover_each_shape():
    """The generator's own contract: no form is the reference with spaces moved."""
    for ref in ["-2,1", "58,500", "(3,4]", "\\text{Evelyn}", "\\text{(B)}", "204_5", "\\$18.90", "30^\\circ",
                "\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}", "y = 2x + 3", "1 \\pm \\sqrt{19}", "-2 + 7i", "50\\%"]:
        equivalent, altered = forms(ref)
        squashed = ref.replace(" ", "")
        assert all(f.replace(" ", "") != squashed for f in equivalent + altered), ref
        assert len(equivalent) >= 3 and len(altered) >= 2, ref


@pytest.mark.parametrize("reference,answer,expected", [
    ("-2,1", "1,-2", True),  # all solutions, in any order
    ("-2,1", "-21", False),  # was read as the integer -21
    ("-2,1", "x = -2 \\text{ or } x = 1", True),
    ("58,500", "58500", True),  # thousands separators are not a list
    ("58,500", "58, 501", False),
    ("5", "x = 5", True),
    ("18", "\\$18", True),
    ("18", "18 \\text{ dollars}", True),
    ("18", "18.5", False),
    ("(3,4]", "3 < x \\le 4", True),
    ("(3,4]", "(3,4)", False),
    ("(15,-29)", "(-29,15)", False),  # a tuple is ordered
    ("25\\%", "25", True),
    ("25\\%", "0.25", True),
    ("25\\%", "26\\%", False),
    ("30^\\circ", "30°", True),
    ("\\frac{1}{3}", "0.333333", True),
    ("\\frac{1}{3}", "0.33", False),
    (".0000672", "0.0000673", False),  # math-verify alone rounds both to 0.000067
    ("east", "seat", False),  # math-verify alone: e*a*s*t == s*e*a*t
    ("204_5", "204_6", False),  # math-verify alone drops the base
    ("204_5", "204 (base 5)", True),
    ("-2 + 7i", "7 i - 2", True),  # math-verify alone: the space changes how it reads i
    ("\\text{(B)}", "B", True),
    ("\\text{(B)}", "(C)", False),
])
def test_answer_shapes_the_issue_names(reference, answer, expected):
    ok, reason = check_math_answer(f"The answer is $\\boxed{{{answer}}}$.", reference)
    assert ok is expected, reason


def test_what_math_verify_alone_gets_wrong_is_what_we_add():
    """Each addition in grading.answers is there because plain math-verify errs on it."""
    from math_verify import parse, verify

    def plain(reference, answer):
        return verify(parse(f"\\boxed{{{reference}}}"), parse(f"\\boxed{{{answer}}}"))

    for reference, answer, right in [("east", "seat", False), ("204_5", "204_6", False),
                                     (".0000672", "0.0000673", False), ("-2 + 7i", "7 i - 2", True),
                                     ("30^\\circ", "30°", True)]:
        assert plain(reference, answer) is not right, (reference, answer)
        assert check_math_answer(f"\\boxed{{{answer}}}", reference)[0] is right, (reference, answer)


def test_unboxed_gsm8k_style_answers():
    for text, ok in [("She makes 9 * 2 = $18 every day.", True), ("Ann has 18 pens.", True),
                     ("The answer is in my reasoning above.", False), ("So the total is 1,018.", False)]:
        assert check_math_answer(text, "18")[0] is ok, text


HOSTILE = ["\\boxed{10^{10^{10}}}", "\\boxed{9^{9^{9^{9^{9}}}}}", "\\boxed{(x+1)^{100000}}",
           "\\boxed{" + "\\frac{1}{" * 300 + "2" + "}" * 300 + "}", "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}",
           "\\boxed{\\sum_{k=1}^{10^{12}} k}", "\\boxed{100000!}", "\\boxed{" + "x^" * 2000 + "2}",
           "\\boxed{\\begin{pmatrix}" + " \\\\ ".join(["1 & " * 60 + "1"] * 60) + "\\end{pmatrix}}"]


def test_hostile_latex_ends_within_the_limit_with_a_reason():
    items = [TraceParts.from_text("Hmm.</think>\n\n" + h, reference="3") for h in HOSTILE]
    limit = 6.0
    started = time.monotonic()
    with GradingPool() as pool:
        verdicts = grade(items, ["correctness"], pool=pool, limits={"correctness": limit})
        seconds = [s["correctness"] for s in pool.seconds]
    elapsed = time.monotonic() - started
    for h, v, s in zip(HOSTILE, verdicts, seconds):
        passed, reason = v["correctness"]
        assert not passed and reason, h[:40]
        assert s <= limit + 0.5, (h[:40], s)
    assert elapsed < len(HOSTILE) * limit / 2 + 10  # two workers, each item bounded
