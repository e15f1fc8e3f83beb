"""Where a prompt goes and what it keeps, on the real engine: a new prompt takes the free slot that costs
least (an empty or short one before one holding a long prompt, which stays in its slot); a short prompt
pushed out of its slot is saved in RAM and restored when it comes again, with the same output."""

import queue

import pytest

pytestmark = pytest.mark.slow

LONG = "<｜User｜>" + "Notes: " + " ".join(f"item{i} costs {i % 97} coins;" for i in range(60)) + "<｜Assistant｜>"


def run(engine, prompt, GenerationRequest):
    events: queue.Queue = queue.Queue()
    engine.submit(GenerationRequest(prompt_tokens=prompt, max_tokens=4, temperature=0), events.put)
    got = []
    while not got or got[-1].kind != "done":
        got.append(events.get(timeout=60))
    return "".join(e.text for e in got if e.kind == "raw"), got[-1].usage


def test_long_prompt_stays_in_its_slot_and_short_prompts_come_back_from_ram(tiny_gguf):
    from r1_distill.llama.engine import BatchEngine, GenerationRequest

    engine = BatchEngine(str(tiny_gguf), parallel=2, ctx=1024, threads=1)
    try:
        long_prompt = engine.tokenize(LONG)
        assert len(long_prompt) > 300
        short = [engine.tokenize(f"<｜User｜>Question {i}: what is {i} plus {i}, and why?<｜Assistant｜>")
                 for i in range(3)]
        assert all(16 <= len(s) < 64 for s in short)
        run(engine, long_prompt, GenerationRequest)
        first, _ = run(engine, short[0], GenerationRequest)
        run(engine, short[1], GenerationRequest)  # pushes short[0] out of the other slot, not the long prompt
        assert engine.prompt_cache.saves == 1
        _, usage = run(engine, long_prompt, GenerationRequest)
        assert usage["cached_tokens"] == len(long_prompt) - 1  # never left its slot
        again, usage = run(engine, short[0], GenerationRequest)
        assert engine.stats["prompt_cache_restores"] == 1
        assert usage["cached_tokens"] == len(short[0]) - 1 and again == first
    finally:
        engine.close()
