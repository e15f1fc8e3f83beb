"""From a base as the hub ships it (Qwen2.5-Math's tokenizer, Llama 3.3 Instruct's), the product's main path:
`train --student NAME` -> `export --gguf` -> `serve`. The student must stop by itself, with its thinking apart.

The bases carry none of R1's tokens; before issue 13 the same run never stopped (finish_reason `length`,
`</think>` learned as several text pieces, eos still the base's)."""

import json

import pytest
from openai import OpenAI

from support import RunningServer
from r1_distill.distill.train import TrainConfig, train
from r1_distill.export.pipeline import ExportConfig, export_gguf
from r1_distill.traces import TraceRecord, write_traces

pytestmark = pytest.mark.slow

QUESTION = "What is 2 + 3?"
REASONING = "2 + 3 = 5."
ANSWER = "The answer is \\boxed{5}."


def _gguf_metadata(path):
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    field = reader.fields["tokenizer.ggml.eos_token_id"]
    return int(field.parts[field.data[0]][0])


@pytest.mark.parametrize("student,base_eos", [("tiny-qwen2.5-math", "<|endoftext|>"),
                                              ("tiny-llama-3.3-instruct", "<|eot_id|>")])
def test_student_from_a_hub_base_stops_by_itself_with_thinking_apart(student, base_eos, fixtures_path, tmp_path):
    from transformers import AutoTokenizer

    from r1_distill.tiny import TinySpec, build_tiny_model, load_tiny_tokenizer

    base = AutoTokenizer.from_pretrained(build_tiny_model(TinySpec(architecture=student.removeprefix("tiny-"))))
    assert base.eos_token == base_eos and len(base.encode("</think>", add_special_tokens=False)) > 1  # a real hub base
    assert load_tiny_tokenizer(student.removeprefix("tiny-")).eos_token == base_eos

    records = [TraceRecord.from_completion(problem_id=f"p{i}", problem=QUESTION, reference_answer="5", sample_index=0,
                                           teacher="ref", backend="ref", kept=True, finish_reason="stop",
                                           completion=f"{REASONING}\n</think>\n\n{ANSWER}") for i in range(1)]
    write_traces(tmp_path / "kept.jsonl", records)
    out = tmp_path / "student"
    # one trace learned by heart: 80 steps of batch 1 (a tiny random model needs that many to use its context)
    metrics = train(TrainConfig(student=student, traces=str(tmp_path / "kept.jsonl"), out=str(out), epochs=80,
                                max_length=128, per_device_batch=1, effective_batch=1, learning_rate=5e-3,
                                save_steps=10**6, print_logs=False))
    assert metrics["final_loss"] < 0.05 * metrics["first_loss"]

    tok = AutoTokenizer.from_pretrained(out)
    for token in ("<think>", "</think>", tok.eos_token):
        assert len(tok.encode(token, add_special_tokens=False)) == 1, token
    assert tok.eos_token == "<｜end▁of▁sentence｜>"
    eos = tok.eos_token_id
    assert json.loads((out / "config.json").read_text())["eos_token_id"] == eos
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == eos
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"]["chat_format"]["renamed"][str(eos)]["to"] == "<｜end▁of▁sentence｜>"  # same row

    export_gguf(ExportConfig(model=str(out), out=str(tmp_path / "gguf"), quants=["Q8_0"], name="student",
                             greedy_tokens=4))
    gguf = tmp_path / "gguf" / "student-Q8_0.gguf"
    assert _gguf_metadata(gguf) == eos

    with RunningServer(gguf, "--parallel", "1", "--ctx", "512") as server:
        client = OpenAI(base_url=server.url + "/v1", api_key="none")
        reply = client.chat.completions.create(model="student", messages=[{"role": "user", "content": QUESTION}],
                                               temperature=0, max_tokens=200)
    choice = reply.choices[0]
    assert choice.finish_reason == "stop", choice.message
    reasoning = (choice.message.model_extra or {}).get("reasoning_content") or ""
    assert reasoning.strip() == REASONING and choice.message.content.strip() == ANSWER
    assert reply.usage.completion_tokens < 40
