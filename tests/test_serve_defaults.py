"""Fast by default: llama.cpp gets one thread per physical core (as llama-server picks), not the
library's fixed default; and the exported Ollama Modelfile makes Ollama treat the model as a thinking model."""

import os
import re

import pytest


def test_threads_default_to_physical_cores(tiny_gguf):
    from r1_distill.llama.threads import physical_cores
    from r1_distill.llama.engine import BatchEngine

    cores = physical_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)
    engine = BatchEngine(str(tiny_gguf), parallel=1, ctx=128)
    try:
        assert engine.threads == cores
        assert engine.L.llama_n_threads(engine.ctx) == cores and engine.L.llama_n_threads_batch(engine.ctx) == cores
    finally:
        engine.close()
    pinned = BatchEngine(str(tiny_gguf), parallel=1, ctx=128, threads=1)
    try:
        assert pinned.L.llama_n_threads(pinned.ctx) == 1
    finally:
        pinned.close()


def test_modelfile_template_carries_the_thinking_tags_ollama_looks_for():
    """Ollama's rule (thinking.InferTags): `.Thinking` used inside `range .Messages`, with the text right
    before and after it in the same block as the opening and closing tags; a prompt that ends with the
    opening tag starts Ollama's parser inside the thinking."""
    from r1_distill.export.pipeline import modelfile_text

    class Sampling:
        temperature, top_p = 0.6, 0.95

    text = modelfile_text("m.gguf", Sampling())
    template = re.search(r'TEMPLATE """(.*?)"""', text, re.S).group(1)
    loop = template[template.index("range $i, $_ := .Messages"):]
    block = re.search(r"\{\{-? if [^}]*\.Thinking \}\}(.*?)\{\{ end \}\}", loop, re.S)
    assert block, template
    before, after = block.group(1).split("{{ .Thinking }}")
    assert before.strip() == "<think>" and after.strip() == "</think>"
    # thinking on: the generation prompt ends with the opening tag; think=false closes it in the prompt
    assert "{{ else }}<think>\n{{ end }}" in template
    assert "{{- if and $.IsThinkSet (not $.Think) }}<think>\n\n</think>\n\n" in template


@pytest.mark.slow
def test_a_cancel_between_queue_and_slot_is_not_lost(tiny_gguf):
    """Requests cancelled right after submitting (while the engine may be moving them into a slot)
    never hold a slot: with the old per-slot event such a cancel was dropped and the request ran on."""
    import time

    from r1_distill.llama.engine import BatchEngine, GenerationRequest

    engine = BatchEngine(str(tiny_gguf), parallel=2, ctx=1024, threads=1)
    try:
        prompt = engine.tokenize("<｜User｜>hi<｜Assistant｜><think>\n")
        for i in range(60):
            cancel = engine.submit(GenerationRequest(prompt_tokens=prompt, max_tokens=900, seed=i), lambda ev: None)
            if i % 3:
                time.sleep(0.001 * (i % 7))
            cancel()
        deadline = time.time() + 10
        while time.time() < deadline and (engine.busy_slots() or engine.queue_length()):
            time.sleep(0.05)
        assert engine.busy_slots() == 0 and engine.queue_length() == 0
        assert engine.stats["cancelled"] == 60 and engine.stats["tokens_generated"] < 60 * 50
    finally:
        engine.close()
