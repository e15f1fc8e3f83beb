"""distill/train.py: the loss mask of the training template, and a short real TRL run on the tiny student."""

import json
import subprocess
import sys

import pytest

from r1_distill.distill.train import TrainConfig, build_dataset, to_messages, train
from r1_distill.registry import read_template
from r1_distill.traces import TraceRecord, write_traces

pytestmark = pytest.mark.slow


def _records(n, data_dir, long=False):
    rows = [json.loads(line) for line in (data_dir / "gsm8k_train.jsonl").read_text().splitlines()[:n]]
    return [TraceRecord.from_completion(
        problem_id=r["id"], problem=r["problem"], reference_answer=r["answer"], sample_index=0, teacher="ref",
        backend="ref", kept=True, finish_reason="stop",
        completion=f"{r['solution'].split('####')[0].strip() * (20 if long else 1)}\n</think>\n\nThe answer is \\boxed{{{r['answer']}}}.")
        for r in rows]


def test_only_the_reasoning_close_answer_and_eos_carry_loss(hub_student_qwen2, data_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hub_student_qwen2)
    tok.chat_template = read_template("r1-distill-train")
    record = _records(1, data_dir)[0]
    enc = tok.apply_chat_template(to_messages(record), tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    trained = tok.decode([t for t, m in zip(ids, mask) if m])
    untrained = tok.decode([t for t, m in zip(ids, mask) if not m])
    assert record.problem in untrained and untrained.endswith("<｜Assistant｜><think>\n")  # the prompt: no loss
    assert record.problem not in trained
    assert trained.startswith(record.reasoning[:20]) and "</think>" in trained and "\\boxed{" in trained
    assert ids[-1] == tok.convert_tokens_to_ids("<｜end▁of▁sentence｜>") and mask[-1] == 1  # EOS is trained
    assert mask.index(1) > 0 and all(mask[mask.index(1):])  # one contiguous trained span at the end
    dataset, too_long, _ = build_dataset(_records(4, data_dir) + _records(2, data_dir, long=True), tok, max_length=400)
    assert len(dataset) == 4 and too_long == 2


def test_short_training_run_saves_a_student_that_thinks_first(fixtures_path, data_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    write_traces(tmp_path / "kept.jsonl", _records(8, data_dir))
    # Llama 3.1's base tokenizer as the hub ships it
    metrics = train(TrainConfig(student="tiny-llama-3.1", traces=str(tmp_path / "kept.jsonl"), out=str(tmp_path / "student"),
                                epochs=3, max_length=320, per_device_batch=8, effective_batch=8, learning_rate=1e-3))
    # one batch of all 8 traces, three times (the first step is warm-up, at learning rate 0): the loss falls
    assert metrics["steps"] == 3 and metrics["trained_on"] == 8 and metrics["final_loss"] < metrics["first_loss"]
    tok = AutoTokenizer.from_pretrained(tmp_path / "student")
    AutoModelForCausalLM.from_pretrained(tmp_path / "student")
    prompt = tok.apply_chat_template([{"role": "user", "content": "2+2?"}], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<｜Assistant｜><think>\n")
    for name in ("manifest.json", "README.md", "loss.png"):
        assert (tmp_path / "student" / name).is_file()


def test_traces_all_too_long_exit_2_with_the_count(fixtures_path, data_dir, tmp_path):
    write_traces(tmp_path / "kept.jsonl", _records(3, data_dir, long=True))
    out = subprocess.run([sys.executable, "-m", "r1_distill", "train", "--student", "tiny-qwen2.5-math", "--traces",
                          str(tmp_path / "kept.jsonl"), "--out", str(tmp_path / "s"), "--max-length", "200"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "all 3 traces are longer than --max-length 200" in out.stderr


def _train_cli(model, traces, out, *extra, timeout=600):
    return [sys.executable, "-m", "r1_distill", "train", "--student", str(model), "--traces", str(traces),
            "--out", str(out), "--max-length", "256", "--lr", "3e-3", *extra]


def test_lora_run_saves_adapter_and_merged_model(small_vocab_model, task_traces, tmp_path):
    from transformers import AutoModelForCausalLM

    metrics = train(TrainConfig(student=str(small_vocab_model), traces=str(task_traces / "kept.jsonl"),
                                out=str(tmp_path / "lora"), method="lora", epochs=1, max_length=256, per_device_batch=8,
                                effective_batch=8, learning_rate=3e-3))
    assert metrics["steps"] == 25 and metrics["final_loss"] < metrics["first_loss"]
    assert (tmp_path / "lora" / "adapter" / "adapter_config.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "lora")  # merged: loads without PEFT
    base = AutoModelForCausalLM.from_pretrained(small_vocab_model)
    changed = [n for (n, p), (_, q) in zip(merged.named_parameters(), base.named_parameters()) if not (p == q).all()]
    assert changed and all("proj" in n for n in changed)  # LoRA moved the linear layers only
    assert (tmp_path / "lora" / "tokenizer.model").is_file()  # carried for llama.cpp's converter


def test_qlora_runs_on_cpu_with_bitsandbytes_4bit(small_vocab_model, task_traces, tmp_path):
    pytest.importorskip("bitsandbytes", reason="bitsandbytes not installed (pip install -e .[dev] installs it)")
    metrics = train(TrainConfig(student=str(small_vocab_model), traces=str(task_traces / "kept.jsonl"),
                                out=str(tmp_path / "qlora"), method="qlora", epochs=1, max_length=256, per_device_batch=8,
                                effective_batch=8, learning_rate=3e-3))
    assert metrics["steps"] == 25 and metrics["final_loss"] < metrics["first_loss"]
    config = json.loads((tmp_path / "qlora" / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    manifest = json.loads((tmp_path / "qlora" / "manifest.json").read_text())
    assert manifest["metrics"]["quantization"] == "bitsandbytes nf4 (cpu)"


def test_resume_after_sigkill_continues_from_the_last_checkpoint(small_vocab_model, task_traces, tmp_path):
    import signal
    import time

    out = tmp_path / "full"
    cmd = _train_cli(small_vocab_model, task_traces / "kept.jsonl", out, "--epochs", "4", "--effective-batch", "4",
                     "--per-device-batch", "4", "--save-steps", "10")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    # killed as checkpoint-30 appears, so most often while it is being written: the resume must skip it
    ready = out / "checkpoints" / "checkpoint-20" / "trainer_state.json"
    while not (ready.is_file() and (ready.parent.parent / "checkpoint-30").is_dir()) \
            and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists()
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"]["resumed"] and manifest["metrics"]["steps"] == 200
    assert manifest["metrics"]["resumed_from_step"] >= 20
    steps = [h["step"] for h in json.loads((out / "log_history.json").read_text()) if "loss" in h]
    assert steps == sorted(set(steps)) and steps[-1] == 200 and len(steps) >= 90  # no step repeated or lost


def test_resume_skips_a_checkpoint_the_kill_left_half_written(tmp_path):
    from r1_distill.distill.checkpoints import last_complete_checkpoint

    for step, complete in [(10, True), (20, True), (30, False)]:
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"weights")
        if complete:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-20"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-10", "checkpoint-20"]
    assert last_complete_checkpoint(tmp_path / "none-yet") is None


def test_lora_from_a_hub_base_trains_the_rows_of_the_format_tokens(fixtures_path, data_dir, tmp_path):
    """LoRA alone would leave `<think>`'s row as Qwen2.5's `<|box_start|>`: the embeddings train with it."""
    from safetensors.torch import load_file

    from r1_distill.tiny import TinySpec, build_tiny_model

    write_traces(tmp_path / "kept.jsonl", _records(4, data_dir))
    metrics = train(TrainConfig(student="tiny-qwen2.5-math", traces=str(tmp_path / "kept.jsonl"), out=str(tmp_path / "s"),
                                method="lora", epochs=3, max_length=320, per_device_batch=4, effective_batch=4,
                                learning_rate=1e-2, save_steps=10**6))
    assert metrics["chat_format"]["renamed"]["151648"] == {"from": "<|box_start|>", "to": "<think>"}
    adapter = json.loads((tmp_path / "s" / "adapter" / "adapter_config.json").read_text())
    assert set(adapter["modules_to_save"]) >= {"embed_tokens"}
    base = load_file(str(build_tiny_model(TinySpec(architecture="qwen2.5-math")) / "model.safetensors"))
    merged = load_file(str(tmp_path / "s" / "model.safetensors"))
    think, close = 151648, 151649
    key = "model.embed_tokens.weight"
    assert not merged[key][think].equal(base[key][think]) and not merged[key][close].equal(base[key][close])
