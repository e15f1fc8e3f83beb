"""distill/grpo.py: 10 real GRPO steps (TRL GRPOTrainer) on CPU, rewards logged per function."""

import json
import subprocess
import sys

import pytest

from r1_distill.distill.grpo import build_reward_functions

pytestmark = pytest.mark.slow


def test_ten_grpo_steps_on_cpu_log_each_reward(small_vocab_model, task_traces, tmp_path):
    out = tmp_path / "grpo"
    run = subprocess.run([sys.executable, "-m", "r1_distill", "grpo", "--model", str(small_vocab_model),
                          "--prompts", str(task_traces / "prompt.jsonl"), "--out", str(out), "--steps", "10",
                          "--num-generations", "4", "--prompts-per-step", "2", "--max-completion-length", "16",
                          "--rewards", "correctness,format,repetition,length", "--length-budget", "4", "--prompt-suffix", "",
                          "--lr", "1e-4"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    history = json.loads((out / "log_history.json").read_text())
    steps = [h for h in history if "loss" in h]
    assert len(steps) == 10
    for name in ("correctness_reward", "format_reward", "repetition_penalty_reward", "length_reward"):
        assert all(f"rewards/{name}/mean" in h for h in steps), name
    assert (out / "rewards.png").stat().st_size > 1000 and (out / "config.json").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "grpo" and manifest["metrics"]["steps"] == 10
    assert "correctness_reward" in run.stdout
    # the length reward has its budget from the command line: random 16-token completions run over 4 words
    assert any(h["rewards/length_reward/mean"] < 0 for h in steps)


def test_reward_functions_score_a_right_and_a_wrong_completion():
    correctness, fmt = build_reward_functions(["correctness", "format"])
    right = [{"role": "assistant", "content": "2 + 3 = 5\n</think>\n\nSo \\boxed{5}."}]
    wrong = [{"role": "assistant", "content": "2 + 3 = 6 and no closing tag \\boxed{6}"}]
    assert correctness(completions=[right, wrong], answer=["5", "5"]) == [1.0, 0.0]
    assert fmt(completions=[right, wrong], answer=["5", "5"]) == [1.0, 0.0]
    (arithmetic,) = build_reward_functions(["arithmetic"])
    assert arithmetic(completions=[right, wrong], answer=["5", "5"]) == [1.0, 0.0]


def test_unknown_reward_and_prompts_without_answers_are_clear_errors(small_vocab_model, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "a", "problem": "2+2?"}) + "\n")
    for extra, message in ((["--rewards", "speed"], "unknown reward"), ([], "no reference answer"),
                           (["--rewards", "correctness,length"], "the length reward needs its budget: --length-budget")):
        run = subprocess.run([sys.executable, "-m", "r1_distill", "grpo", "--model", str(small_vocab_model),
                              "--prompts", str(prompts), "--out", str(tmp_path / "o"), *extra],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr


def test_grpo_on_a_hub_base_gives_it_the_r1_format(fixtures_path, task_traces, tmp_path):
    """A base with its own chat template and no R1 tokens (Llama 3.3 Instruct's tokenizer as shipped): its
    GRPO prompts and saved tokenizer carry R1's format, `<think>` one token, eos agreed everywhere."""
    from transformers import AutoTokenizer

    from r1_distill.tiny import TinySpec, build_tiny_model

    base = build_tiny_model(TinySpec(architecture="llama-3.3-instruct"))
    out = tmp_path / "grpo"
    run = subprocess.run([sys.executable, "-m", "r1_distill", "grpo", "--model", str(base), "--prompts",
                          str(task_traces / "prompt.jsonl"), "--out", str(out), "--steps", "2", "--num-generations", "2",
                          "--prompts-per-step", "1", "--max-completion-length", "8", "--prompt-suffix", ""],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.eos_token == "<｜end▁of▁sentence｜>" and len(tok.encode("</think>", add_special_tokens=False)) == 1
    assert tok.apply_chat_template([{"role": "user", "content": "1+1?"}], tokenize=False,
                                   add_generation_prompt=True).endswith("<｜Assistant｜><think>\n")
    assert json.loads((out / "config.json").read_text())["eos_token_id"] == tok.eos_token_id
    renamed = json.loads((out / "manifest.json").read_text())["metrics"]["chat_format"]["renamed"]
    assert renamed["128001"] == {"from": "<|end_of_text|>", "to": "<｜end▁of▁sentence｜>"}
