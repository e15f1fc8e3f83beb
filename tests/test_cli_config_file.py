"""`--config FILE.yaml` on every stage: the file's options (a flag's name without dashes, or the stage config's
field name) are the command's defaults, flags given on the command line override them; an unknown key or a file
that is not a mapping is one line and exit 2."""

import json
import subprocess
import sys

import pytest
import yaml

from support import first_kept

STAGES = ["export", "serve", "generate", "filter", "chat", "train", "grpo", "eval", "demo"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r1_distill", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_train_reads_the_recipe_file_and_the_flag_overrides_it(small_vocab_model, task_traces, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "student": str(small_vocab_model), "traces": str(first_kept(task_traces, 8, tmp_path)), "out": str(tmp_path / "s"),
        "learning_rate": 3e-3, "epochs": 1, "max-length": 256, "per_device_batch": 8, "effective_batch": 8}))
    done = cli("train", "--config", str(recipe), "--lr", "1e-5")
    assert done.returncode == 0, done.stderr[-2000:]
    config = json.loads((tmp_path / "s" / "manifest.json").read_text())["config"]
    assert config["learning_rate"] == 1e-5 and config["max_length"] == 256 and config["per_device_batch"] == 8


def test_an_unknown_key_names_the_stage_and_its_options(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("student: x\nlearning_rat: 1e-5\n")
    done = cli("train", "--config", str(recipe))
    assert done.returncode == 2 and "train has no option 'learning_rat'" in done.stderr and "learning_rate" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    recipe.write_text("- a list\n")
    done = cli("grpo", "--config", str(recipe))
    assert done.returncode == 2 and "is not a mapping" in done.stderr


def test_every_stage_takes_a_config_file():
    from typer.testing import CliRunner

    from r1_distill.cli import app

    for stage in STAGES:
        assert "--config FILE.yaml" in CliRunner().invoke(app, [stage, "--help"], terminal_width=200).output, stage
