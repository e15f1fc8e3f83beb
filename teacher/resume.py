"""What a trace folder was sampled with, so a rerun only resumes the same run.

`generate` (and `eval`, which samples through it) appends to a folder and skips the (prompt, sample)
pairs already there. That is only right when the teacher, its weights and the sampling settings are the
ones that wrote them: a folder of traces from yesterday's checkpoint must not pass as today's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from r1_distill.run_folder import claim_folder

RUN_FILE = "sampling_run.json"
_WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pt")
_EDGE = 1 << 20  # bytes read from each end of a weight file


def weights_fingerprint(path: str | Path) -> str | None:
    """A cheap content fingerprint of local weights: size plus the first and last MiB of each file.
    None for what is not a local path (a hub id, a URL), whose identity is its name."""
    p = Path(path)
    if not p.exists():
        return None
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(_WEIGHT_SUFFIXES))
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(_EDGE))
            if size > 2 * _EDGE:
                fh.seek(-_EDGE, 2)
                h.update(fh.read(_EDGE))
    return h.hexdigest()[:16]


def claim(out: Path, identity: dict) -> None:
    """Record `identity` in `out`, or refuse when `out` already holds traces of a different run."""
    claim_folder(out, identity, run_file=RUN_FILE, holds="traces sampled with other settings",
                 mixing="Resuming would mix two runs")


def identity_of(teacher_name: str, model: str | None, backend: str, sampling) -> dict:
    """Who sampled (the model, not the URL it was reached at, which may change) and how."""
    local = next((p for p in (teacher_name, model) if p and Path(p).exists()), None)
    return {"teacher": model or teacher_name, "backend": backend,
            "weights": weights_fingerprint(local) if local else None,
            **sampling.as_dict(), "system_prompt": sampling.system_prompt}
