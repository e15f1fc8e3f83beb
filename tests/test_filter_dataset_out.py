"""`filter` writes its kept traces as a standard dataset beside kept.jsonl: Parquet shards of conversational
`messages` rows (thinking inline in `<think>`, and as `reasoning_content`) with a dataset card, which
`datasets.load_dataset("parquet", ...)` reads and plain TRL `SFTTrainer`, at its defaults, trains on."""

import pytest

from r1_distill.teacher.filter import FilterConfig, filter_traces
from r1_distill.traces import TraceRecord, write_traces

pytestmark = pytest.mark.slow


def _trace(pid, problem, answer, k=0, reference="42"):
    completion = f"Working it out: {problem} gives {answer}, checked twice.\n</think>\n\nThe answer is \\boxed{{{answer}}}."
    return TraceRecord.from_completion(problem_id=pid, problem=problem, reference_answer=reference, sample_index=k,
                                       teacher="teacher-a" if k == 0 else "teacher-b", backend="test",
                                       completion=completion, finish_reason="stop")


def test_kept_traces_load_as_a_messages_dataset_that_plain_trl_trains_on(tiny_qwen2, data_dir, tmp_path):
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    records = [_trace(f"p{i}", f"What is {i} + {42 - i}?", "42") for i in range(6)]
    records += [_trace("p0", "What is 0 + 42?", "41", k=1)]  # wrong: dropped, never in the dataset
    write_traces(tmp_path / "traces.jsonl", records)
    report = filter_traces(FilterConfig(traces=str(tmp_path / "traces.jsonl"), out=str(tmp_path / "out"),
                                        decontaminate=[str(data_dir / "math500.jsonl")]))
    assert report["kept"] == 6

    dataset = load_dataset("parquet", data_files=str(tmp_path / "out" / "dataset" / "data" / "*.parquet"), split="train")
    assert len(dataset) == 6 and set(dataset["problem_id"]) == {f"p{i}" for i in range(6)}
    user, assistant = dataset[0]["messages"]
    assert user["role"] == "user" and user["content"].startswith("What is")
    assert assistant["role"] == "assistant" and assistant["content"].startswith("<think>\n")
    assert "</think>\n\nThe answer is \\boxed{42}." in assistant["content"]
    assert assistant["reasoning_content"] and assistant["reasoning_content"] in assistant["content"]
    card = (tmp_path / "out" / "dataset" / "README.md").read_text()
    assert "data/*.parquet" in card and "6 reasoning traces kept" in card and "`math500.jsonl`" in card
    assert "| correctness | 1 |" in card and "teacher-b" in card

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen2)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2)
    trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=dataset,
                         args=SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=2, per_device_train_batch_size=2,
                                        report_to="none", use_cpu=True))  # TRL's defaults, on a CPU
    result = trainer.train()
    assert result.global_step == 2 and result.training_loss > 0
