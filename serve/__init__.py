"""r1_distill.serve: an OpenAI-compatible local server with the thinking returned apart.

Its public API (what other stages and the CLI import, as ``from r1_distill.serve import ...``):
:class:`ServerConfig`, :func:`create_app` (the FastAPI app, to run in-process) and :func:`serve` (uvicorn in
the foreground). They load on first use, so that importing the package stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["ServerConfig", "create_app", "serve"]

if TYPE_CHECKING:
    from .app import create_app, serve
    from .config import ServerConfig


def __getattr__(name: str):
    if name == "ServerConfig":
        from .config import ServerConfig

        return ServerConfig
    if name in ("create_app", "serve"):
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
