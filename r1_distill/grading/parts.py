"""What a check looks at: a completion split into its reasoning and its answer, and the reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from r1_distill.reasoning import split_reasoning

Verdict = tuple[bool, str]


@dataclass(frozen=True)
class TraceParts:
    completion: str
    reasoning: str
    answer: str
    thinking_closed: bool
    reference: Optional[str] = None  # a final answer, or a code problem's tests (see grading.code)
    finish_reason: Optional[str] = None
    completion_tokens: Optional[int] = None

    @classmethod
    def from_text(cls, completion: str, reference: Optional[str] = None, **kw) -> "TraceParts":
        parts = split_reasoning(completion)
        return cls(completion=completion, reasoning=parts.reasoning, answer=parts.answer,
                   thinking_closed=parts.thinking_closed, reference=reference, **kw)

    @classmethod
    def from_record(cls, record) -> "TraceParts":
        """From a TraceRecord (r1_distill.traces)."""
        return cls(completion=record.completion, reasoning=record.reasoning, answer=record.answer,
                   thinking_closed="</think>" in record.completion or bool(record.answer),
                   reference=record.reference_answer, finish_reason=record.finish_reason,
                   completion_tokens=record.completion_tokens)


def completion_text(completion) -> str:
    """TRL passes strings for standard datasets and message lists for conversational ones."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


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
