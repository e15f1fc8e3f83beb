"""The `code` check: the completion's final code block, run against the problem's tests in the sandbox.

A code problem's reference is its tests, carried in the trace's `reference_answer` as JSON (so the
trace record and the GRPO dataset need no other column): ``{"code_tests": {"tests": [...]}}``, where
each test is one of

* ``{"input": "...", "output": "..."}``: a stdin/stdout case (CodeContests, LiveCodeBench); the
  program's stdout must equal `output`, up to trailing whitespace on each line and at the end;
* ``{"assert": "assert add(2, 3) == 5"}``: code run after the solution (MBPP's test list);
* ``{"check": "def check(candidate): ...", "entry_point": "add"}``: HumanEval's form, run as
  ``check(add)`` after the solution;
* ``{"input", "output", "call": "name"}`` or ``{"input", "output", "compare": "livecodebench"}``: a
  LiveCodeBench functional or stdin test, run and compared as LiveCodeBench does
  (:mod:`r1_distill.grading.livecodebench`).

A prompt file gives them in a `tests` field (:func:`code_reference` turns them into the reference).
Each test runs in its own sandbox (:mod:`r1_distill.grading.sandbox`), or, with the check's
`sandbox` option, in a remote one (:mod:`r1_distill.grading.remote`: ``piston:URL``, ``e2b``); the
first failing test ends the check with its reason.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterable, Optional

from .parts import TraceParts, Verdict
from .remote import Runner, extra_seconds, open_runner, require_sandbox
from .sandbox import Limits, SandboxUnavailable, run_python

KEY = "code_tests"
INLINE_BYTES = 256 << 10  # tests up to this size ride in the reference itself
_BLOCK_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)


def code_reference(tests: Any, *, limits: Optional[dict] = None, store: Optional[Path] = None,
                   inline_bytes: int = INLINE_BYTES) -> str:
    """The reference string for a code problem, from a prompt file's `tests` field. With `store`, tests
    larger than `inline_bytes` (LiveCodeBench's private tests run to megabytes) are written there once, named
    by their digest, and the reference points to the file (``{"tests_file", "count", "sha256"}``), so that
    every sample's trace record carries a line rather than a copy."""
    if isinstance(tests, str):
        tests = json.loads(tests)
    if isinstance(tests, dict) and KEY in tests:
        tests = tests[KEY]["tests"]
    if not isinstance(tests, list) or not tests:
        raise ValueError("`tests` must be a non-empty list of {input, output}, {assert} or {check, entry_point}")
    for i, t in enumerate(tests):
        if isinstance(t, str):
            tests[i] = t = {"assert": t}
        if not isinstance(t, dict) or not ({"input", "output"} <= t.keys() or "assert" in t or {"check", "entry_point"} <= t.keys()):
            raise ValueError(f"test {i + 1} is neither {{input, output}}, {{assert}} nor {{check, entry_point}}: {str(t)[:100]}")
    body: dict[str, Any] = {"tests": tests}
    text = json.dumps(tests, ensure_ascii=False)
    if store is not None and len(text.encode()) > inline_bytes:
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        path = Path(store).resolve() / f"tests-{digest}.json"
        if not path.is_file():
            from r1_distill.files import write_text_atomic

            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, text)
        body = {"tests_file": str(path), "count": len(tests), "sha256": digest}
    if limits:
        body["limits"] = limits
    return json.dumps({KEY: body}, ensure_ascii=False)


def is_code_reference(reference: str) -> bool:
    return reference.lstrip().startswith('{"' + KEY + '"')


def require_sandbox_for(references: Iterable[Optional[str]], sandbox: str) -> None:
    """Before a run: where any reference is a code problem's tests, the sandbox must run a program
    (grading.remote.require_sandbox; a UserError says why not)."""
    if any(ref is not None and is_code_reference(str(ref)) for ref in references):
        require_sandbox(sandbox)


def _tests_and_limits(reference: str) -> tuple[list[dict], Limits]:
    body = json.loads(reference)[KEY]
    if "tests" in body:
        return body["tests"], Limits(**body.get("limits", {}))
    text = Path(body["tests_file"]).read_text(encoding="utf-8")
    if hashlib.sha256(text.encode()).hexdigest()[:16] != body["sha256"]:
        raise ValueError(f"{body['tests_file']} is not the tests the reference was made with (its digest differs)")
    return json.loads(text), Limits(**body.get("limits", {}))


def _count_and_limits(reference: str) -> tuple[int, Limits]:
    body = json.loads(reference)[KEY]
    return (len(body["tests"]) if "tests" in body else int(body["count"])), Limits(**body.get("limits", {}))


def wall_limit(reference: str, sandbox: str = "local") -> float:
    """The hard limit for grading one completion: every test's wall clock, plus start-up (and a remote
    sandbox's round trips)."""
    try:
        count, limits = _count_and_limits(reference)
    except (ValueError, KeyError, TypeError):
        return 10.0
    return count * (limits.wall_s + 1.0) + 5.0 + extra_seconds(sandbox, count)


def final_code_block(answer: str) -> Optional[str]:
    """The last fenced code block (```python ... ```) of the answer."""
    blocks = _BLOCK_RE.findall(answer)
    return blocks[-1][1] if blocks else None


def _same_output(got: str, expected: str) -> bool:
    def norm(s: str) -> list[str]:
        return [line.rstrip() for line in s.strip().splitlines()]

    return norm(got) == norm(expected)


def _run_livecodebench(program: str, test: dict, limits: Limits, run: Runner) -> Verdict:
    """A LiveCodeBench test (grading.livecodebench): a functional call or a stdin case, compared as it does."""
    from . import livecodebench as lcb

    if test.get("call"):
        result = run(lcb.call_harness(program, str(test["call"])), str(test["input"]), limits)
        if result.reason:
            return False, result.reason
        return lcb.call_result(result.stdout, str(test["output"]))
    result = run(lcb.stdin_program(program), str(test["input"]), limits)
    if result.reason:
        return False, result.reason
    if not lcb.same_output(result.stdout, str(test["output"])):
        return False, f"wrong output: expected {str(test['output'])[:60]!r}, got {result.stdout[:60]!r}"
    return True, f"output matches ({result.seconds:.2f} s)"


def run_test(program: str, test: dict, limits: Limits, run: Runner = run_python) -> Verdict:
    if test.get("call") or test.get("compare") == "livecodebench":
        return _run_livecodebench(program, test, limits, run)
    if "input" in test:
        result = run(program, str(test["input"]), limits)
        if result.reason:
            return False, result.reason
        if not _same_output(result.stdout, str(test["output"])):
            return False, f"wrong output: expected {str(test['output'])[:60]!r}, got {result.stdout[:60]!r}"
        return True, f"output matches ({result.seconds:.2f} s)"
    if "assert" in test:
        harness = f"{program}\n\n# -- test --\n{test['assert']}\n"
    else:
        harness = f"{program}\n\n# -- test --\n{test['check']}\n\ncheck({test['entry_point']})\n"
    result = run(harness, "", limits)
    if result.reason:
        if "AssertionError" in result.stderr:
            return False, f"assertion failed: {(test.get('assert') or 'check(' + test['entry_point'] + ')')[:100]}"
        return False, result.reason
    return True, f"tests pass ({result.seconds:.2f} s)"


def check_code(t: TraceParts, sandbox: str = "local") -> Verdict:
    """`sandbox`: where the tests run, "local" (bubblewrap), "piston:URL" or "e2b" (see grading.remote)."""
    if not t.reference or not is_code_reference(t.reference):
        return False, "not a code problem: the reference holds no tests"
    if not t.answer.strip():
        return False, "empty answer after </think>" if t.thinking_closed else "no answer: the thinking never closed"
    program = final_code_block(t.answer)
    if program is None:
        return False, "no code block in the answer"
    try:
        tests, limits = _tests_and_limits(t.reference)
    except (OSError, ValueError, KeyError) as exc:
        return False, f"cannot read the problem's tests: {exc}"
    try:
        with open_runner(sandbox, lifetime_s=wall_limit(t.reference, sandbox)) as run:
            for i, test in enumerate(tests):
                ok, reason = run_test(program, test, limits, run)
                if not ok:
                    return False, f"test {i + 1} of {len(tests)}: {reason}"
    except SandboxUnavailable as exc:
        return False, str(exc)
    return True, f"all {len(tests)} tests pass"
