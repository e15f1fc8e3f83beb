"""Moved to :mod:`r1_distill.grading` (one grading module for filter, eval and grpo); these names stay
importable from here."""

from r1_distill.grading.answers import check_correctness, check_math_answer  # noqa: F401
from r1_distill.grading.checks import (arithmetic_steps, check_arithmetic, check_format, check_language,  # noqa: F401
                                       check_length, check_readability, check_repetition, repetition_ratio,
                                       script_shares)
from r1_distill.grading.parts import TraceParts, Verdict, completion_text, last_boxed  # noqa: F401
from r1_distill.grading.registry import CHECKS, reward_function  # noqa: F401
