"""The shipped `accelerate launch` configs: valid for accelerate, named by the recipes, installed with the package."""

from pathlib import Path

import pytest

import r1_distill.distill
from r1_distill.registry import load_registry

CONFIGS = Path(r1_distill.distill.__file__).parent / "accelerate"


@pytest.mark.parametrize("name,kind", [("zero3", "DEEPSPEED"), ("fsdp2", "FSDP"), ("ddp", "MULTI_GPU")])
def test_config_loads_in_accelerate(name, kind):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(CONFIGS / f"{name}.yaml")
    assert str(config.distributed_type).endswith(kind) and config.mixed_precision == "bf16"
    if name == "zero3":
        assert config.deepspeed_config["zero_stage"] == 3
    if name == "fsdp2":
        assert config.fsdp_config["fsdp_version"] == 2


def test_every_recipe_names_a_shipped_config():
    for name, student in load_registry().students.items():
        if student.recipe.accelerate_config:
            assert (CONFIGS / f"{student.recipe.accelerate_config}.yaml").is_file(), name
