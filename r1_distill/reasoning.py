"""Split a reasoning model's output into its thinking and its answer.

Every stage uses this one implementation: the filters, SFT formatting, the server and the UI.

R1-style models write ``<think>\\n ... \\n</think>\\n\\n answer``. The released chat templates put
``<think>\\n`` into the prompt, so the completion usually holds only the closing tag. The rules:

* a leading ``<think>`` (after whitespace) is consumed;
* everything before the first ``</think>`` is reasoning, everything after it is the answer;
* with no ``</think>`` at all, the output never left the thinking (it was truncated): everything is
  reasoning and the answer is empty -- unless ``assume_thinking=False`` and no ``<think>`` opened it,
  in which case the model did not think and everything is answer;
* both parts are stripped of surrounding whitespace.

:class:`ReasoningStreamParser` applies the same rules to a stream of text chunks, holding back any
tail that could still be the start of a tag, so that the concatenated pieces it emits equal what
:func:`split_reasoning` returns for the whole text, whatever the chunking.
"""

from __future__ import annotations

from dataclasses import dataclass

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

REASONING = "reasoning"
ANSWER = "answer"


@dataclass(frozen=True)
class ReasoningSplit:
    reasoning: str
    answer: str
    thinking_closed: bool  # a `</think>` was seen: the model finished thinking

    @property
    def truncated_in_thinking(self) -> bool:
        return not self.thinking_closed


def split_reasoning(text: str, *, assume_thinking: bool = True) -> ReasoningSplit:
    parser = ReasoningStreamParser(assume_thinking=assume_thinking)
    pieces = parser.feed(text) + parser.finish()
    reasoning = "".join(t for kind, t in pieces if kind == REASONING)
    answer = "".join(t for kind, t in pieces if kind == ANSWER)
    return ReasoningSplit(reasoning=reasoning, answer=answer, thinking_closed=parser.thinking_closed)


def _partial_tag_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ReasoningStreamParser:
    """Incremental :func:`split_reasoning`.

    ``feed(chunk)`` returns a list of ``(kind, text)`` pieces, kind being ``"reasoning"`` or
    ``"answer"``; ``finish()`` flushes what was held back. Whitespace at the edges of each part is
    held until it is known not to be an edge, so streamed parts match the non-streaming split.
    """

    def __init__(self, *, assume_thinking: bool = True):
        self.assume_thinking = assume_thinking
        self.state = "start"  # start -> reasoning -> answer, or start -> answer
        self.thinking_closed = False
        self._buffer = ""  # undecided text (possible tag prefix)
        self._pending_ws = ""  # whitespace inside a part, held until more text follows
        self._part_started = False  # has the current part emitted non-whitespace yet

    def feed(self, chunk: str) -> list[tuple[str, str]]:
        self._buffer += chunk
        out: list[tuple[str, str]] = []
        while True:
            before = (self.state, len(self._buffer))
            if self.state == "start":
                self._step_start()
            elif self.state == REASONING:
                self._step_reasoning(out)
            else:
                self._emit(out, ANSWER, self._buffer)
                self._buffer = ""
            if (self.state, len(self._buffer)) == before:
                return out

    def finish(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.state == "start":
            self._enter_body()
        # whatever is held back is plain text now (a partial tag that never completed)
        self._emit(out, self.state, self._buffer)
        self._buffer = ""
        return out

    def _step_start(self) -> None:
        stripped = self._buffer.lstrip()
        if stripped.startswith(THINK_OPEN):
            self._buffer = stripped[len(THINK_OPEN):]
            self._switch(REASONING)
        elif stripped and not THINK_OPEN.startswith(stripped):
            self._enter_body()
        # else: only whitespace or a prefix of "<think>" so far: wait

    def _enter_body(self) -> None:
        self._switch(REASONING if self.assume_thinking else ANSWER)

    def _step_reasoning(self, out: list[tuple[str, str]]) -> None:
        idx = self._buffer.find(THINK_CLOSE)
        if idx >= 0:
            self._emit(out, REASONING, self._buffer[:idx])
            self._buffer = self._buffer[idx + len(THINK_CLOSE):]
            self.thinking_closed = True
            self._switch(ANSWER)
            return
        keep = _partial_tag_suffix(self._buffer, THINK_CLOSE)
        ready = self._buffer[: len(self._buffer) - keep]
        if ready:
            self._emit(out, REASONING, ready)
            self._buffer = self._buffer[len(ready):]

    def _switch(self, state: str) -> None:
        self.state = state
        self._pending_ws = ""  # trailing whitespace of the part that ended is dropped
        self._part_started = False

    def _emit(self, out: list[tuple[str, str]], kind: str, text: str) -> None:
        if not text:
            return
        if not self._part_started:
            text = text.lstrip()
            if not text:
                return
            self._part_started = True
        body = text.rstrip()
        trailing = text[len(body):]
        if body:
            out.append((kind, self._pending_ws + body))
            self._pending_ws = trailing
        else:
            self._pending_ws += trailing


def join_reasoning(reasoning: str, answer: str) -> str:
    """The raw text form of a (reasoning, answer) pair, as an R1 model writes it after `<think>\\n`."""
    return f"{reasoning.strip()}\n{THINK_CLOSE}\n\n{answer.strip()}"
