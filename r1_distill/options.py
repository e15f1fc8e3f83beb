"""A stage's options, declared once. Each stage's config dataclass field carries its flag's help in field
metadata (TRL's `HfArgumentParser` pattern), and `r1_distill.cli` generates its commands from those
fields: a new option is one field. Fields the program sets itself are `internal()`.

    learning_rate: Optional[float] = option(None, help="Peak learning rate.", flags=("--lr", "--learning-rate"))
    models_file: Optional[str] = internal(None)
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import MISSING
from typing import Any, Optional


def option(default: Any = MISSING, *, help: str, flags: tuple[str, ...] = (), metavar: Optional[str] = None,
           csv: bool = False, envvar: Optional[str] = None, default_factory: Any = MISSING) -> Any:
    """A config field that is also a command-line option. `flags` replaces the default `--field-name`;
    `csv` reads a list field from one comma-separated flag (`--rewards a,b`); a list field without it
    repeats its flag (`--decontaminate A --decontaminate B`)."""
    metadata = {"help": help, "flags": tuple(flags), "metavar": metavar, "csv": csv, "envvar": envvar}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def internal(default: Any = MISSING, *, default_factory: Any = MISSING) -> Any:
    """A config field set by the program (or by a test), never a command-line option."""
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={"internal": True})
    return dataclasses.field(default=default, metadata={"internal": True})


@dataclasses.dataclass(frozen=True)
class Option:
    """One command-line option of a config field, as the CLI generator needs it."""

    name: str  # the field
    flags: tuple[str, ...]
    help: str
    annotation: Any  # the type the command-line parser gets
    default: Any  # MISSING: required
    metavar: Optional[str]
    csv: bool
    envvar: Optional[str]
    element: Any  # a list field's element type (csv or repeated), else None


def cli_options(config_cls: type) -> list[Option]:
    """The command-line options of a config dataclass, in field order (internal fields left out)."""
    hints = typing.get_type_hints(config_cls)
    found = []
    for f in dataclasses.fields(config_cls):
        meta = f.metadata
        if meta.get("internal"):
            continue
        if "help" not in meta:
            raise TypeError(f"{config_cls.__name__}.{f.name} has no help: declare it with option(..., help=...) "
                            "or internal(...)")
        kind = _strip_optional(hints[f.name])
        element = None
        if typing.get_origin(kind) in (list, tuple):
            element = (typing.get_args(kind) or (str,))[0]
            annotation = Optional[str] if meta["csv"] else Optional[list[element]]
        elif kind is bool and f.default is None:
            annotation = Optional[bool]
        else:
            annotation = Optional[kind] if f.default is None else kind
        if f.default is not MISSING:
            default = f.default
        elif f.default_factory is not MISSING:
            default = f.default_factory()
        else:
            default = MISSING
        if element is not None and default is not MISSING:
            if meta["csv"]:
                default = ",".join(map(str, default)) if default else None
            else:
                default = list(default) or None
        flags = meta["flags"] or ("--" + f.name.replace("_", "-"),)
        found.append(Option(f.name, flags, meta["help"], annotation, default, meta["metavar"], meta["csv"],
                            meta["envvar"], element))
    return found


def _strip_optional(kind: Any) -> Any:
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return kind


def from_cli(option_: Option, value: Any) -> Any:
    """A parsed command-line value (not None: an option not given keeps the field's default) as the config
    field takes it: a comma-separated list split and typed."""
    if option_.element is None:
        return value
    items = [v.strip() for v in value.split(",") if v.strip()] if option_.csv else list(value)
    try:
        return [option_.element(v) for v in items]
    except ValueError:
        from .errors import UserError

        raise UserError(f"{option_.flags[0]} takes {option_.element.__name__} values, got {value!r}") from None
