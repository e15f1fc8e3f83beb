"""bench/gpu_check.py on a CPU: the dry run's plan (every check, its command, flags the CLI accepts) and the
one-line refusals. Nothing trains here."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "gpu_check.py"
CHECKS = ["padding_free_sft", "bf16_master_weights", "grpo_colocate_vllm", "generate_vllm", "qlora", "fsdp2"]


def run(*args, env=None):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, **(env or {})})


def one_error_line(out) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and out.stdout == "" and len(lines) == 1, (out.returncode, out.stdout, out.stderr)
    assert lines[0].startswith("error: ") and "Traceback" not in out.stderr
    return lines[0]


@pytest.fixture(scope="module")
def plan(fixtures_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    done = run("--dry-run", "--out", str(out))
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    return done, json.loads(lines[0]), out


def test_dry_run_plans_every_check_with_a_command_the_cli_accepts(plan):
    done, line, out = plan
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    assert line["dry_run"] is True and line["missing_flags"] == {} and line["help_errors"] == {}
    assert list(line["checks"]) == CHECKS
    expected = {"padding_free_sft": ("train", ["--max-length", "8192", "--method", "full"]),
                "bf16_master_weights": ("train", ["--precision", "bf16", "--lr", "1e-6", "--method", "full"]),
                "grpo_colocate_vllm": ("grpo", ["--steps", "3", "--num-generations", "4", "--prompts-per-step", "2",
                                                "--max-completion-length", "128", "--vllm-max-model-length", "1024",
                                                "--vllm-gpu-memory-utilization", "0.3"]),
                "generate_vllm": ("generate", ["--backend", "vllm", "--samples", "2", "--max-tokens", "256"]),
                "qlora": ("train", ["--method", "qlora"]),
                "fsdp2": ("train", ["--method", "full", "--precision", "bf16"])}
    for name, (subcommand, pairs) in expected.items():
        argv = shlex.split(line["checks"][name]["command"])
        if name == "fsdp2":  # under the shipped fsdp2.yaml, copied for one GPU under --out
            assert argv[:3] == ["accelerate", "launch", "--config_file"] and argv[3].endswith("fsdp2-one-gpu.yaml")
            argv = ["python"] + argv[4:]
        assert argv[:4] == ["python", "-m", "r1_distill", subcommand], argv
        for flag, value in zip(pairs[::2], pairs[1::2]):
            assert argv[argv.index(flag) + 1] == value, (name, flag)
        assert all(str(out) in a for a in argv if a.startswith("/")), argv  # everything it writes is under --out
    assert line["checks"]["padding_free_sft"]["needs"] == "flash_attn"
    assert line["checks"]["grpo_colocate_vllm"]["needs"] == line["checks"]["generate_vllm"]["needs"] == "vllm"


def test_dry_run_models_are_qwen2_5_1_5b_shaped(plan):
    _, line, _ = plan
    big = line["models"]["qwen2.5-1.5b"]
    assert (big["hidden_size"], big["num_hidden_layers"], big["num_attention_heads"], big["num_key_value_heads"],
            big["intermediate_size"], big["vocab_size"]) == (1536, 28, 12, 2, 8960, 151936)
    assert big["max_position_embeddings"] == 131072 and big["tie_word_embeddings"] is True
    assert big["parameters"] == 1_543_714_304  # Qwen2.5-1.5B's count
    assert line["checks"]["padding_free_sft"]["model"] == line["checks"]["grpo_colocate_vllm"]["model"] == "qwen2.5-1.5b"
    assert line["models"]["small"]["parameters"] < big["parameters"] / 10
    assert set(line["versions"]) >= {"torch", "transformers", "trl", "peft", "accelerate", "deepspeed", "vllm",
                                     "flash_attn", "bitsandbytes"}
    assert line["versions"]["transformers"] and line["versions"]["trl"]


def test_only_narrows_the_plan_and_keeps_the_order(tmp_path):
    done = run("--dry-run", "--only", "qlora,bf16_master_weights", "--out", str(tmp_path))
    line = json.loads(done.stdout)
    assert list(line["checks"]) == ["bf16_master_weights", "qlora"]


@pytest.mark.parametrize("args, words", [
    (["--only", "nonsense"], ["nonsense", "padding_free_sft"]),
    (["--dry-run", "--only", "qlora,nonsense"], ["nonsense"]),
    (["--dry-run", "--timeout-per-check", "-5"], ["--timeout-per-check", "-5"]),
    (["--dry-run", "--frobnicate"], ["--frobnicate"]),
])
def test_bad_arguments_exit_2_with_one_error_line(args, words):
    line = one_error_line(run(*args))
    assert all(w in line for w in words), line


def test_without_a_gpu_it_refuses_and_points_to_the_dry_run():
    line = one_error_line(run("--only", "bf16_master_weights", env={"CUDA_VISIBLE_DEVICES": ""}))
    assert line == "error: no CUDA GPU: run with --dry-run to check the plan"
