"""Who may use the app: public mode (`--share`, a non-local `--host`) and `--auth` logins."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from r1_distill.errors import UserError

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def is_public(host: str, share: bool) -> bool:
    return share or host not in LOCAL_HOSTS


def parse_auth(value: Optional[str]) -> Optional[list[tuple[str, str]]]:
    """`--auth USER:PASSWORD`, or `--auth FILE` with one USER:PASSWORD a line (# comments): Gradio's login pairs."""
    if not value:
        return None
    path = Path(value)
    if path.is_file():
        entries = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                   if line.strip() and not line.lstrip().startswith("#")]
        where = f"--auth {value}"
        if not entries:
            raise UserError(f"{where} holds no USER:PASSWORD line: add one per person")
    elif ":" in value:
        entries, where = [value], "--auth"
    else:
        # not echoed: a colon-less value may be a password typed without its user
        raise UserError("--auth: the value has no ':' and is not a file: give USER:PASSWORD, "
                        "or a file with one USER:PASSWORD a line")
    logins = []
    for number, entry in enumerate(entries, start=1):
        user, _, password = entry.partition(":")
        if not user.strip() or not password:
            # the entry itself is not echoed: it may hold a password
            raise UserError(f"{where}: entry {number} is not USER:PASSWORD with both parts non-empty")
        logins.append((user.strip(), password))
    return logins
