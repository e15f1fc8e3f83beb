"""`r1-distill serve`'s settings, one field each with its command-line help (the CLI is generated from them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from r1_distill.options import internal, option

CORS_ENV = "R1_DISTILL_CORS_ORIGINS"
API_KEY_ENV = "R1_DISTILL_API_KEY"


@dataclass
class ServerConfig:
    model: str = option(help="A .gguf file (from r1-distill export --gguf).")
    host: str = option("127.0.0.1", help="Bind address (127.0.0.1: this machine only).")
    port: int = option(8000, help="Port to listen on.")
    api_key: Optional[str] = option(None, help="Require 'Authorization: Bearer KEY'.", envvar=API_KEY_ENV)
    parallel: int = option(4, help="Sequences decoded together (slots).")
    ctx: int = option(4096, help="Context tokens per slot.")
    threads: Optional[int] = option(None, help="CPU threads (default: the machine's physical cores, as llama-server).")
    max_queue: int = option(64, help="Requests waiting for a slot before 503.")
    draft: Optional[str] = option(None, metavar="FILE.gguf", help=(
        "Speculative decoding with a draft model: a smaller GGUF with the same vocabulary (the 1.5B student for "
        "a 7B one, or the model's own Q4 for its Q8); output is unchanged, only faster where drafts are accepted."))
    draft_max: int = option(3, help="The draft model's tokens per step at most (llama-server's --spec-draft-n-max).")
    draft_p_min: float = option(0.0, help="The draft model stops drafting where its top probability is lower "
                                "(llama-server's --spec-draft-p-min).")
    lookup: int = option(0, metavar="N", help=(
        "Speculative decoding by prompt lookup: draft up to N tokens that followed the last n-gram's earlier "
        "occurrence in the prompt or output (0: off; not with --draft)."))
    model_name: Optional[str] = option(None, help="Model id in the API (default: the file's stem).", flags=("--name",))
    models_file: Optional[str] = internal(None)
    cors_origins: list[str] = option(  # e.g. ["*"] or ["http://localhost:3000"]
        default_factory=list, csv=True, envvar=CORS_ENV,
        help="Comma-separated origins allowed by CORS ('*' for any); off by default.")
    exit_on_engine_failure: bool = internal(False)  # the CLI exits (for its supervisor) if a dead engine cannot restart
