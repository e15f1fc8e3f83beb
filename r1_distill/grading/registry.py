"""Every check in one registry: a verdict function (filter, eval) and a reward function (grpo).

A check's verdict is ``fn(parts, **options) -> (passed, reason)``; its reward is 1.0 / 0.0 from the
verdict unless the check has a graded one (repetition, length). Both run in the worker processes of
:mod:`r1_distill.grading.pool`, each under the check's hard time limit, so a hostile completion costs
its limit and a failed verdict with the reason, never a stuck run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from . import answers, checks, choice, code
from .parts import TraceParts, Verdict, completion_text
from .pool import Failure, GradingPool, Job, Step, shared_pool


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Callable[..., Verdict]
    reward: Optional[Callable[..., float]] = None  # fn(parts, **options) -> float; default 1.0 if it passes
    timeout_s: float = 10.0  # hard wall limit per item (code: from its tests, see limit_for)

    def limit_for(self, parts: TraceParts, sandbox: str = "local") -> float:
        if self.name in ("correctness", "code") and parts.reference and code.is_code_reference(parts.reference):
            return code.wall_limit(parts.reference, sandbox)
        return self.timeout_s


def _repetition_reward(t: TraceParts, n: int = 8, scale: float = 1.0, **_) -> float:
    """A graded penalty (0 for fresh text, down to -scale for a loop), as open-r1's."""
    return -scale * checks.repetition_ratio(t.completion, n)


def _length_reward(t: TraceParts, max_words: Optional[int] = None, **_) -> float:
    """0 inside the budget, falling linearly to -1 at twice the budget (words, a tokenizer-free proxy)."""
    if not max_words:
        return 0.0
    n = len(t.completion.split())
    return -min(1.0, max(0, n - max_words) / max_words)


CHECKS: dict[str, Check] = {c.name: c for c in [
    Check("format", checks.check_format, timeout_s=5),
    Check("correctness", answers.check_correctness, timeout_s=10),
    Check("code", code.check_code, timeout_s=60),
    Check("choice", choice.check_choice, timeout_s=5),
    Check("arithmetic", checks.check_arithmetic, timeout_s=5),
    Check("language", checks.check_language, timeout_s=5),
    Check("readability", checks.check_readability, timeout_s=5),
    Check("repetition", checks.check_repetition, reward=_repetition_reward, timeout_s=5),
    Check("length", checks.check_length, reward=_length_reward, timeout_s=5),
]}


def register(check: Check) -> None:
    CHECKS[check.name] = check


# -- run in a worker --------------------------------------------------------------------------------
def run_check(parts: TraceParts, check: str, **options) -> Verdict:
    return CHECKS[check].verdict(parts, **options)


def run_reward(parts: TraceParts, check: str, **options) -> float:
    c = CHECKS[check]
    if c.reward is not None:
        return c.reward(parts, **options)
    passed, _ = c.verdict(parts, **options)
    return 1.0 if passed else 0.0


def _verdict(result) -> Verdict:
    if isinstance(result, Failure):
        return False, result.reason
    return bool(result[0]), str(result[1])


def grade(items: list[TraceParts], names: list[str], options: Optional[dict[str, dict]] = None,
          pool: Optional[GradingPool] = None, limits: Optional[dict[str, float]] = None) -> list[dict[str, Verdict]]:
    """Every named check's verdict on every item, on all cores, each under its hard time limit
    (`limits` overrides a check's own, in seconds)."""
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise KeyError(f"unknown checks {unknown}: known are {sorted(CHECKS)}")
    options, limits = options or {}, limits or {}
    jobs = [Job(parts, [Step(n, "r1_distill.grading.registry:run_check", {"check": n, **options.get(n, {})},
                             limits.get(n) or CHECKS[n].limit_for(parts, options.get(n, {}).get("sandbox", "local")))
                        for n in names], key=parts.reference)
            for parts in items]
    results = (pool or shared_pool()).run(jobs)
    return [{n: _verdict(r[n]) for n in names} for r in results]


def grade_one(parts: TraceParts, name: str, **options) -> Verdict:
    return grade([parts], [name], {name: options})[0][name]


def reward_function(name: str, **options) -> Callable[..., list[float]]:
    """TRL `reward_funcs` form: fn(prompts, completions, **dataset_columns) -> list[float]. The reference
    comes from the dataset column `answer` (or `reference_answer`): a final answer, or a code
    problem's tests."""
    if name not in CHECKS:
        raise KeyError(f"unknown check {name!r}: known are {sorted(CHECKS)}")
    check = CHECKS[name]

    def reward(prompts=None, completions=None, **columns) -> list[float]:
        refs = columns.get("answer") or columns.get("reference_answer") or [None] * len(completions)
        items = [TraceParts.from_text(completion_text(c), reference=ref) for c, ref in zip(completions, refs)]
        jobs = [Job(p, [Step(name, "r1_distill.grading.registry:run_reward", {"check": name, **options},
                             check.limit_for(p, options.get("sandbox", "local")))]) for p in items]
        results = shared_pool().run(jobs)
        graded = [r[name] for r in results]
        floor = -1.0 if check.reward is not None else 0.0  # a check that ran out of time earns its worst
        return [floor if isinstance(g, Failure) else float(g) for g in graded]

    reward.__name__ = "repetition_penalty_reward" if name == "repetition" else f"{name}_reward"
    return reward
