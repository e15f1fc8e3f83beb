"""Claiming a run folder: a resumable stage records what it is doing in its --out folder, and a later run
with other settings is refused there instead of mixing its output with the first one's (generate, eval)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from .errors import UserError
from .files import write_json_atomic


def claim_folder(out: Path, identity: dict, *, run_file: str, holds: str, mixing: str,
                 from_before: Sequence[str] = ()) -> None:
    """Record `identity` in `out/run_file`, or refuse when `out` holds a run with another identity. `holds` names
    what is there ("traces sampled with other settings"), `mixing` why resuming into it is wrong; `from_before`
    are files that show an unrecorded run of an older version."""
    path = out / run_file
    if path.is_file():
        before = json.loads(path.read_text())
        changed = sorted(k for k in set(before) | set(identity) if before.get(k) != identity.get(k))
        if changed:
            detail = "; ".join(f"{k}: {before.get(k)!r} then, {identity.get(k)!r} now" for k in changed)
            raise UserError(f"{out} holds {holds} ({detail}). {mixing}: pass another --out, or delete {out} "
                            "to start over")
        return
    if any((out / name).exists() for name in from_before):
        raise UserError(f"{out} holds {holds.split(' with ')[0]} from before runs were recorded ({run_file} is "
                        f"missing): pass another --out, or delete {out} to start over")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, identity)
