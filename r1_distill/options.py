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
from pathlib import Path
from typing import Any, Callable, Optional

from .errors import UserError

SANDBOX_HELP = "Where code tests run: local (bubblewrap), piston:URL (a Piston server) or e2b (E2B_API_KEY)."
TRACE_FORMAT_HELP = ("The traces' row shape, e.g. openr1-math, openthoughts, am-deepseek-r1 (default: detected from the "
                     "columns; an unknown shape's error lists every format).")


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
                default = list(default or []) or None
        dashed = f.name.replace("_", "-")
        flags = meta["flags"] or ((f"--{dashed}/--no-{dashed}",) if annotation == Optional[bool] else (f"--{dashed}",))
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
        raise UserError(f"{option_.flags[0]} takes {option_.element.__name__} values, got {value!r}") from None


def add_command(app: Any, name: str, config_cls: type, run: Callable[[Any], None], *, help: str,
                program_fields: Callable[[], dict] = dict) -> None:
    """Register `name` on a typer app as a command whose options are `config_cls`'s fields (plus `--config
    FILE.yaml`); it builds the config, with `program_fields()` (e.g. the registry file) for the internal
    fields the config has, and calls `run(config)`."""
    import inspect

    import typer

    options = cli_options(config_cls)
    params = [inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=config_option(),
                                annotation=Optional[Path])]
    for o in options:
        default = ... if o.default is MISSING else o.default
        params.append(inspect.Parameter(
            o.name, inspect.Parameter.KEYWORD_ONLY, annotation=o.annotation,
            default=typer.Option(default, *o.flags, help=o.help, metavar=o.metavar, envvar=o.envvar)))
    names = {f.name for f in dataclasses.fields(config_cls)}

    def command(**values: Any) -> None:
        given = {o.name: from_cli(o, values[o.name]) for o in options if values.get(o.name) is not None}
        given.update({k: v for k, v in program_fields().items() if k in names})
        run(config_cls(**given))

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = help
    command.__name__ = f"{name.replace('-', '_')}_command"
    app.command(name)(command)


def load_stage_config(ctx, param, path: Optional[Path]) -> Optional[Path]:
    """`--config FILE.yaml`: the file's keys (a stage's options, as the flag without its dashes or the config
    field, e.g. `max_length`, `learning_rate`) become the command's defaults, and flags given override them."""
    if path is None:
        return None
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read --config {path}: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(data, dict):
        raise UserError(f"--config {path} is not a mapping of option names to values")
    names = {}
    for param in ctx.command.params:
        if param.name == "config":
            continue
        names[param.name] = param.name
        for flag in [*param.opts, *param.secondary_opts]:
            names[flag.lstrip("-").replace("-", "_")] = param.name
    defaults = {}
    for key, value in data.items():
        name = names.get(str(key).replace("-", "_"))
        if name is None:
            known = ", ".join(sorted(names))
            raise UserError(f"--config {path}: {ctx.info_name} has no option {key!r} (it has: {known})")
        defaults[name] = ",".join(map(str, value)) if isinstance(value, list) and _takes_csv(ctx, name) else value
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return path


def _takes_csv(ctx, name: str) -> bool:
    """A comma-separated option (e.g. --rewards) given as a YAML list in a --config file."""
    param = next(p for p in ctx.command.params if p.name == name)
    return not getattr(param, "multiple", False) and getattr(param.type, "name", "") == "text"


def config_option():
    """`--config FILE.yaml`, on every generated command."""
    import typer

    return typer.Option(None, "--config", metavar="FILE.yaml", is_eager=True, callback=load_stage_config,
                        help="A recipe file of this command's options (flags given override it).")
