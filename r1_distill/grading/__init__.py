"""Grading: every check r1-distill runs on a completion, in one place.

`filter` (verdicts on traces), `eval` (correctness of samples, answers that vote together) and
`grpo` (the same checks as TRL reward functions) all come here:

* :mod:`.answers`: correctness of a final answer (math-verify, plus what it lacks), cons@K grouping;
* :mod:`.checks`: format, language, readability, repetition, length, arithmetic steps;
* :mod:`.choice`: a multiple-choice letter (GPQA), read as lighteval reads it;
* :mod:`.livecodebench`: LiveCodeBench's rows as tests for :mod:`.code`;
* :mod:`.code`: a code problem's tests run on the completion's final code block, in
  :mod:`.sandbox` (bubblewrap) or a remote sandbox of :mod:`.remote` (Piston, E2B);
* :mod:`.registry`: each check's verdict and reward function, by name;
* :mod:`.pool`: worker processes on all cores, each item under a hard wall-clock limit.
"""

from .parts import TraceParts, Verdict, completion_text, last_boxed
from .registry import CHECKS, Check, grade, grade_one, register, reward_function

__all__ = ["CHECKS", "Check", "TraceParts", "Verdict", "completion_text", "grade", "grade_one", "last_boxed",
           "register", "reward_function"]
