"""FilterConfig declares every field as a command-line option (help, flags, metavar) or as internal, which the CLI
generator reads: --traces and --decontaminate repeat, the row shape is --format NAME, --push-to-hub REPO."""

import dataclasses
from dataclasses import MISSING
from typing import Optional

from r1_distill.options import cli_options, from_cli
from r1_distill.teacher.filter import FilterConfig


def test_every_filter_field_is_an_option_or_internal():
    options = {o.name: o for o in cli_options(FilterConfig)}  # raises for a field with neither
    fields = {f.name: f for f in dataclasses.fields(FilterConfig)}
    assert set(options) == {name for name, f in fields.items() if not f.metadata.get("internal")}
    assert {name for name, f in fields.items() if f.metadata.get("internal")} == {"spill_bytes"}
    assert all(o.help.strip() for o in options.values())

    traces = options["traces"]
    assert traces.flags == ("--traces",) and traces.default is MISSING and traces.element is str and not traces.csv
    assert "cap=N" in traces.help and "weight=W" in traces.help
    assert from_cli(traces, ("a.jsonl", "open-r1/OpenR1-Math-220k:cap=10")) == ["a.jsonl", "open-r1/OpenR1-Math-220k:cap=10"]
    assert options["out"].default is MISSING
    decontaminate = options["decontaminate"]
    assert decontaminate.annotation == Optional[list[str]] and not decontaminate.csv and decontaminate.default is None
    fmt = options["trace_format"]
    assert fmt.flags == ("--format",) and fmt.metavar == "NAME" and fmt.default is None
    assert options["push_to_hub"].metavar == "REPO" and options["sandbox"].metavar == "SPEC"
    assert options["keep_per_prompt"].help == "Keep at most M correct traces per prompt."

    # one source as a string, as callers before mixing passed it, is a list of one
    assert FilterConfig(traces="runs/traces", out="o").traces == ["runs/traces"]
