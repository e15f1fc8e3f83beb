"""One sequence's generated text on its way out of the engine, as plain strings: token bytes decoded as
UTF-8 across token boundaries, stop strings (the text ends before the first one, and nothing is sent
until a tail that could begin one is proven not to), and the reasoning/answer split of
:class:`~r1_distill.reasoning.ReasoningStreamParser`.

Each call returns the pieces to send, in order: ``("raw", text)`` (the text as generated), then the same
text split as ``("reasoning", text)`` / ``("answer", text)``.
"""

from __future__ import annotations

import codecs

from r1_distill.reasoning import ReasoningStreamParser

Piece = tuple[str, str]  # (kind, text): kind "raw" | "reasoning" | "answer"


class TextStream:
    def __init__(self, stop: list[str] | None = None, *, thinking: bool = True):
        self.stop = list(stop or [])
        self.parser = ReasoningStreamParser(assume_thinking=thinking)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""  # everything generated so far (cut before a stop string once one appears)
        self.emitted_upto = 0  # characters of self.text already sent (the rest may be a stop prefix)
        self.stopped = False  # a stop string appeared: the text is complete

    @property
    def thinking_closed(self) -> bool:
        return self.parser.thinking_closed

    def in_thinking(self, opened: bool) -> bool:
        """Whether the next token is part of the thinking (`opened`: the prompt opened it)."""
        state = self.parser.state
        return state == "reasoning" or (state == "start" and opened)

    def add_bytes(self, data: bytes, *, stops_armed: bool = True) -> list[Piece]:
        """A token's bytes; a character split across tokens comes out whole with the token that ends it."""
        return self.add(self.decoder.decode(data), stops_armed=stops_armed)

    def add(self, text: str, *, stops_armed: bool = True) -> list[Piece]:
        """New text. `stops_armed` false: stop strings do not end the text yet (vLLM's min_tokens), though a
        tail that could begin one is still held back. After a stop string, `stopped` is true and the text
        before it has all been returned."""
        if not text or self.stopped:
            return []
        self.text += text
        if self.stop and stops_armed:
            hits = [self.text.find(s, max(0, self.emitted_upto - len(s))) for s in self.stop]
            hits = [h for h in hits if h >= 0]
            if hits:
                self.text = self.text[: min(hits)]
                self.stopped = True
                return self._flush(final=True)
        return self._flush(final=False)

    def finish(self) -> list[Piece]:
        """The end of the sequence: what was held back, and the parser's last pieces."""
        if not self.stopped:
            self.text += self.decoder.decode(b"", final=True)
        pieces = self._flush(final=True)
        return pieces + list(self.parser.finish())

    def _flush(self, *, final: bool) -> list[Piece]:
        upto = len(self.text)
        if not final and self.stop:  # hold back what could be the start of a stop string
            longest = max(len(s) for s in self.stop)
            for k in range(min(longest - 1, upto - self.emitted_upto), 0, -1):
                if any(s.startswith(self.text[upto - k:]) for s in self.stop):
                    upto -= k
                    break
        fresh = self.text[self.emitted_upto: upto]
        self.emitted_upto = upto
        if not fresh:
            return []
        return [("raw", fresh), *self.parser.feed(fresh)]
