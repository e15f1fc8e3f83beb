"""`demo --redo STAGE` reruns that stage and the later ones with the settings given now: their state and what
they wrote are gone (a model trained into an old folder would resume, an evaluation would count old samples),
the earlier stages' are kept; an unknown stage is one line naming the stages."""

import json
from dataclasses import replace

import pytest

from r1_distill.demo.pipeline import STAGE_OUTPUTS, STAGES, Demo, DemoConfig, _jsonable
from r1_distill.errors import UserError


def finished_run(tmp_path) -> DemoConfig:
    config = DemoConfig(out=str(tmp_path / "run"))
    for stage, written in STAGE_OUTPUTS.items():
        for path in written:
            target = tmp_path / "run" / path
            if "." in target.name:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("{}")
            else:
                target.mkdir(parents=True, exist_ok=True)
                (target / "weights").write_text("x")
    state = {"config": _jsonable(config), "stages": {s: {"seconds": 1.0} for s in STAGES}}
    (tmp_path / "run" / "state.json").write_text(json.dumps(state))
    return config


def test_redo_drops_the_stage_and_every_later_one_and_takes_the_new_settings(tmp_path):
    config = finished_run(tmp_path)
    other = replace(config, coldstart_epochs=20)
    with pytest.raises(UserError, match="other settings.*--redo"):
        Demo(other)
    demo = Demo(other, redo="student-coldstart")
    kept = STAGES[: STAGES.index("student-coldstart")]
    assert list(demo.state["stages"]) == kept
    assert demo.state["config"]["coldstart_epochs"] == 20
    run = tmp_path / "run"
    assert (run / "models" / "student").is_dir() and (run / "eval" / "teacher-grpo").is_dir()
    for gone in ("models/student-coldstart", "arms", "models/arm-grpo", "eval/student", "eval/arm-opd", "report.json"):
        assert not (run / gone).exists(), gone


def test_every_stage_that_writes_has_its_outputs_listed():
    assert set(STAGE_OUTPUTS) == set(STAGES) - {"export-teacher", "export-student"}


def test_an_unknown_stage_is_refused_naming_the_stages(tmp_path):
    with pytest.raises(UserError, match="no such stage.*student-coldstart"):
        Demo(finished_run(tmp_path), redo="coldstart")
