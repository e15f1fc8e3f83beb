"""The CLI is generated from the stage config dataclasses: every option field is a flag with its help, a new
field becomes a flag with nothing else to write, internal fields stay off the command line, and list fields
read a comma-separated flag or a repeated one."""

import dataclasses
from dataclasses import dataclass
from typing import Optional

import typer
from typer.testing import CliRunner

from r1_distill import cli
from r1_distill.distill.evaluate import EvalConfig
from r1_distill.distill.grpo import GRPORunConfig
from r1_distill.distill.train import TrainConfig
from r1_distill.export.pipeline import ExportConfig
from r1_distill.options import add_command, cli_options, internal, option
from r1_distill.demo.pipeline import DemoOptions
from r1_distill.serve.config import ServerConfig
from r1_distill.teacher.filter import FilterConfig
from r1_distill.teacher.generate import GenerateConfig
from r1_distill.ui.options import ChatOptions


def test_every_option_field_of_every_stage_is_a_flag_with_its_help():
    for name, config_cls in [("train", TrainConfig), ("grpo", GRPORunConfig), ("eval", EvalConfig),
                             ("generate", GenerateConfig), ("export", ExportConfig), ("filter", FilterConfig),
                             ("serve", ServerConfig), ("chat", ChatOptions), ("demo", DemoOptions)]:
        shown = CliRunner().invoke(cli.app, [name, "--help"], terminal_width=400).output
        fields = {f.name for f in dataclasses.fields(config_cls)}
        options = cli_options(config_cls)
        assert {o.name for o in options} <= fields
        for o in options:
            assert o.flags[0].split("/")[0] in shown, (name, o.flags)
            assert " ".join(o.help.split())[:30] in " ".join(shown.split()), (name, o.name)
        assert "--models-file" not in shown and "--print-logs" not in shown  # internal fields stay off


@dataclass
class ToyConfig:
    out: str = option(help="Where.")
    rate: float = option(0.5, flags=("--rate", "-r"), help="How fast.")
    names: list[str] = option(default_factory=lambda: ["a"], csv=True, help="Comma-separated names.")
    files: Optional[list[str]] = option(None, help="Repeat it.")
    weights: Optional[list[float]] = option(None, csv=True, help="One per name.")
    checked: Optional[bool] = option(None, help="On, off or unset.")
    models_file: Optional[str] = internal(None)


def toy_app(ran: list):
    app = typer.Typer()
    add_command(app, "toy", ToyConfig, ran.append, help="A toy stage.",
                program_fields=lambda: {"models_file": "registry.yaml", "not_a_field": 1})

    @app.command("other")
    def other():  # a second command, so typer keeps "toy" as a subcommand
        pass

    return app


def test_a_new_field_is_a_flag_and_reaches_the_config():
    ran = []
    done = CliRunner().invoke(toy_app(ran), ["toy", "--out", "x", "-r", "2", "--names", "b, c", "--files", "f1",
                                             "--files", "f2", "--weights", "1,0.5", "--no-checked"])
    assert done.exit_code == 0, done.output
    assert ran == [ToyConfig(out="x", rate=2.0, names=["b", "c"], files=["f1", "f2"], weights=[1.0, 0.5],
                             checked=False, models_file="registry.yaml")]


def test_options_not_given_keep_the_fields_defaults():
    ran = []
    assert CliRunner().invoke(toy_app(ran), ["toy", "--out", "x"]).exit_code == 0
    assert ran == [ToyConfig(out="x", models_file="registry.yaml")]
    assert ran[0].names == ["a"] and ran[0].checked is None and ran[0].files is None


def test_a_field_without_help_is_refused_when_the_command_is_built():
    @dataclass
    class Undocumented:
        out: str = dataclasses.field(default="x")

    try:
        cli_options(Undocumented)
    except TypeError as exc:
        assert "Undocumented.out has no help" in str(exc)
    else:
        raise AssertionError("a field without help became a flag")


def test_a_wrongly_typed_list_value_is_one_line(tmp_path):
    done = CliRunner().invoke(toy_app([]), ["toy", "--out", "x", "--weights", "1,heavy"])
    assert done.exit_code != 0 and "--weights takes float values" in str(done.exception)
