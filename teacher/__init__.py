"""r1_distill.teacher: reach or serve the teacher, sample k traces per prompt, verify and filter them.

Its public API (what other stages import, as ``from r1_distill.teacher import ...``): :class:`GenerateConfig`
and :func:`generate_traces` (sampling; `eval` samples the model under test with them), :class:`FilterConfig`
and :func:`filter_traces`. They load on first use, so that importing the package stays light."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = ["FilterConfig", "GenerateConfig", "filter_traces", "generate_traces"]
_HOMES = {"GenerateConfig": ("generate", "GenerateConfig"), "generate_traces": ("generate", "generate"),
          "FilterConfig": ("filter", "FilterConfig"), "filter_traces": ("filter", "filter_traces")}

if TYPE_CHECKING:
    from .filter import FilterConfig, filter_traces
    from .generate import GenerateConfig, generate as generate_traces


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _HOMES[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
