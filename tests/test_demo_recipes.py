"""The demo's settings are recipe files: the shipped demo.yaml is the demo's defaults, demo-fast.yaml the suite's
size, `demo --recipe FILE` reads a copy, and an unknown setting is one line naming the known ones."""

import subprocess
import sys
from dataclasses import asdict

import yaml

from r1_distill.demo.pipeline import RECIPES, DemoConfig, DemoOptions


def test_the_shipped_recipe_is_the_demo_and_the_fast_one_is_smaller():
    assert DemoConfig.from_recipe(RECIPES / "demo.yaml") == DemoConfig()
    fast = DemoOptions(fast=True).demo_config()
    assert fast.out == "runs/demo-fast" and fast.grpo_steps < DemoConfig().grpo_steps
    assert fast.teacher.hidden_size == 128 and fast.student.seed == 1


def test_a_copied_recipe_with_changes_runs_with_them(tmp_path):
    data = yaml.safe_load((RECIPES / "demo-fast.yaml").read_text())
    data["grpo_steps"] = 2
    data["student"]["hidden_size"] = 32
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(yaml.safe_dump(data))
    config = DemoOptions(recipe=str(recipe), seed=3, out=str(tmp_path / "run")).demo_config()
    assert config.grpo_steps == 2 and config.student.hidden_size == 32 and config.seed == 3
    assert asdict(config)["teacher"] == asdict(DemoConfig.fast())["teacher"]


def test_an_unknown_setting_is_one_line(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("grpo_stepz: 3\n")
    done = subprocess.run([sys.executable, "-m", "r1_distill", "demo", "--recipe", str(recipe), "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown settings grpo_stepz" in done.stderr and "grpo_steps" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
