import subprocess
import sys


from r1_distill.cli import main

STAGES = ["models", "generate", "filter", "train", "grpo", "eval", "export", "serve", "chat", "demo"]


def test_help_lists_every_stage(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for stage in STAGES:
        assert stage in out


def test_models_prints_students_bases_and_recipes():
    out = subprocess.run([sys.executable, "-m", "r1_distill", "models"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for needle in ["r1-distill-qwen-1.5b", "Qwen/Qwen2.5-Math-1.5B", "meta-llama/Llama-3.3-70B-Instruct",
                   "r1-distill-llama-8b", "32768", "full", "lora"]:
        assert needle in out.stdout


def test_models_json(capsys):
    import json

    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len([s for s in data["students"].values() if not s["tiny"]]) == 6


def test_unknown_command_is_a_usage_error():
    assert main(["frobnicate"]) == 2
