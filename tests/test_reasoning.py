import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r1_distill.reasoning import ReasoningStreamParser, join_reasoning, split_reasoning


@pytest.mark.parametrize(
    "text, reasoning, answer, closed",
    [
        # the template forced "<think>\n" into the prompt: the output has only the closing tag
        ("First, 2+2=4.\n</think>\n\nThe answer is \\boxed{4}.", "First, 2+2=4.", "The answer is \\boxed{4}.", True),
        # the model wrote the opening tag itself
        ("<think>\nLet me see.\n</think>\n\n**4**", "Let me see.", "**4**", True),
        ("  \n<think>x</think>y", "x", "y", True),
        # no </think>: truncated while thinking; everything is reasoning, the answer empty
        ("Let me think about this for a long", "Let me think about this for a long", "", False),
        ("<think>\nstill going", "still going", "", False),
        # empty thinking
        ("<think>\n\n</think>\n\nHello!", "", "Hello!", True),
        ("\n</think>\n\nHello!", "", "Hello!", True),
        # only the first </think> closes the thinking; later tags are answer text
        ("a</think>b</think>c", "a", "b</think>c", True),
        # nothing at all
        ("", "", "", False),
        # a lone partial tag at the very end is text, not a tag
        ("so the answer </thi", "so the answer </thi", "", False),
    ],
)
def test_split_cases(text, reasoning, answer, closed):
    parts = split_reasoning(text)
    assert (parts.reasoning, parts.answer, parts.thinking_closed) == (reasoning, answer, closed)


def test_no_thinking_when_not_assumed():
    parts = split_reasoning("Just an answer.", assume_thinking=False)
    assert (parts.reasoning, parts.answer, parts.thinking_closed) == ("", "Just an answer.", False)
    parts = split_reasoning("<think>hm</think>ok", assume_thinking=False)
    assert (parts.reasoning, parts.answer) == ("hm", "ok")


def test_join_roundtrip():
    parts = split_reasoning(join_reasoning("step 1\nstep 2", "\\boxed{3}"))
    assert (parts.reasoning, parts.answer) == ("step 1\nstep 2", "\\boxed{3}")


def _stream(chunks, **kw):
    parser = ReasoningStreamParser(**kw)
    pieces = []
    for c in chunks:
        pieces += parser.feed(c)
    pieces += parser.finish()
    return pieces


def test_stream_tag_split_across_chunks_is_held_back():
    parser = ReasoningStreamParser()
    assert parser.feed("<thi") == []  # could be <think>: held
    assert parser.feed("nk>\nplan") == [("reasoning", "plan")]
    assert parser.feed(" more </th") == [("reasoning", " more")]  # "</th" held, trailing space held
    assert parser.feed("ink>\n\nThe ans") == [("answer", "The ans")]
    assert parser.feed("wer.") == [("answer", "wer.")]
    assert parser.finish() == []


def test_stream_order_reasoning_then_answer():
    pieces = _stream(["Step one. ", "Step two.\n</", "think>", "\n\n", "Final: 7"])
    kinds = [k for k, _ in pieces]
    assert kinds == sorted(kinds, key=lambda k: k != "reasoning")
    assert "".join(t for k, t in pieces if k == "reasoning") == "Step one. Step two."
    assert "".join(t for k, t in pieces if k == "answer") == "Final: 7"


def test_stream_partial_close_tag_that_is_not_a_tag_is_released():
    pieces = _stream(["a </thx", "yz"])
    assert pieces and "".join(t for _, t in pieces) == "a </thxyz"


TEXTS = [
    "First, 2+2=4.\n</think>\n\nThe answer is \\boxed{4}.",
    "<think>\nLet me see.\n</think>\n\n**4**",
    "<think>\n\n</think>\n\nHello!",
    "never closes the thinking </thin",
    "  <thin",
    "a</think>b</think>c",
    "  spaced   words \n\n </think>  \n answer  with  spaces \n",
    "",
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TEXTS) | st.text(alphabet="ab <>/thinks\n", max_size=40), st.data(), st.booleans())
def test_stream_equals_split_for_any_chunking(text, data, assume_thinking):
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    chunks = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])]
    pieces = _stream(chunks, assume_thinking=assume_thinking)
    whole = split_reasoning(text, assume_thinking=assume_thinking)
    assert "".join(t for k, t in pieces if k == "reasoning") == whole.reasoning
    assert "".join(t for k, t in pieces if k == "answer") == whole.answer
    assert all(t for _, t in pieces), "no empty pieces"
