"""A slot's text stream on plain strings (no model): stop strings, the hold-back of a tail that may begin
one, UTF-8 across tokens, and the reasoning/answer split."""

from r1_distill.llama.text_stream import TextStream


def _kinds(pieces, kind):
    return "".join(t for k, t in pieces if k == kind)


def _run(stream, chunks, **kwargs):
    out = []
    for chunk in chunks:
        out += stream.add(chunk, **kwargs)
    return out


def test_raw_then_split_pieces_for_a_forced_think():
    s = TextStream(thinking=True)
    out = _run(s, ["two and ", "two</think>", "\n\n4"]) + s.finish()
    assert _kinds(out, "raw") == "two and two</think>\n\n4"
    assert _kinds(out, "reasoning") == "two and two" and _kinds(out, "answer").strip() == "4"
    assert s.thinking_closed and not s.stopped


def test_no_thinking_is_all_answer():
    s = TextStream(thinking=False)
    out = _run(s, ["Hello", " world"]) + s.finish()
    assert _kinds(out, "answer") == "Hello world" and _kinds(out, "reasoning") == ""
    assert not s.in_thinking(False)


def test_in_thinking_follows_the_parser():
    s = TextStream(thinking=True)
    assert s.in_thinking(True) and not s.in_thinking(False)
    s.add("a</think>b")
    assert not s.in_thinking(True)


def test_a_stop_string_ends_the_text_before_it():
    s = TextStream(["STOP"], thinking=False)
    out = _run(s, ["abc S", "TO", "P and more"])
    assert s.stopped and _kinds(out, "raw") == "abc " and s.text == "abc "
    assert s.add("later") == [] and _kinds(s.finish(), "raw") == ""


def test_a_partial_stop_is_held_back_until_it_is_not_one():
    s = TextStream(["STOP"], thinking=False)
    assert _kinds(s.add("abc ST"), "raw") == "abc "  # "ST" may begin STOP
    assert _kinds(s.add("X"), "raw") == "STX" and not s.stopped


def test_the_held_back_tail_comes_out_at_the_end():
    s = TextStream(["STOP"], thinking=False)
    out = s.add("abc STO")
    assert _kinds(out, "raw") == "abc "
    assert _kinds(s.finish(), "raw") == "STO"


def test_the_earliest_of_several_stops_wins():
    s = TextStream(["world", "lo w"], thinking=False)
    out = s.add("hello world")
    assert s.stopped and _kinds(out, "raw") == "hel"


def test_stops_not_armed_yet_do_not_end_the_text():
    s = TextStream(["END"], thinking=False)
    out = s.add("a END b", stops_armed=False)
    assert not s.stopped and _kinds(out, "raw") == "a END b"
    out = s.add(" END", stops_armed=True)  # the END already sent stays; the new one stops
    assert s.stopped and _kinds(out, "raw") == " " and s.text == "a END b "


def test_a_stop_found_across_what_was_already_sent():
    s = TextStream(["ab"], thinking=False)
    assert _kinds(s.add("xa"), "raw") == "x"  # "a" may begin "ab": held
    out = s.add("b")
    assert s.stopped and _kinds(out, "raw") == "" and s.text == "x"


def test_a_stop_inside_the_thinking_cuts_the_reasoning():
    s = TextStream(["\n\n"], thinking=True)
    out = _run(s, ["let me think", "\n", "\nmore"]) + s.finish()
    assert s.stopped and _kinds(out, "reasoning") == "let me think" and _kinds(out, "answer") == ""


def test_utf8_split_across_tokens_comes_out_whole():
    s = TextStream(thinking=False)
    data = "é€".encode()
    out = []
    for i in range(len(data)):
        out += s.add_bytes(data[i:i + 1])
    assert _kinds(out, "raw") == "é€"


def test_a_dangling_byte_at_the_end_is_replaced():
    s = TextStream(thinking=False)
    out = s.add_bytes(b"a\xe2\x82") + s.finish()
    assert _kinds(out, "raw") == "a\ufffd"
