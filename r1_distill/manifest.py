"""A small manifest beside each stage's output: what made it, from what, with which versions."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from .files import write_json_atomic

MANIFEST_NAME = "manifest.json"
_TRACKED_PACKAGES = ("r1-distill", "torch", "transformers", "trl", "peft", "accelerate",
                     "llama-cpp-python", "gguf", "vllm", "math-verify", "deepspeed", "bitsandbytes")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()[:16]


def _plain(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "model_dump"):
        return value.model_dump()
    return value


def write_manifest(out_dir: str | Path, stage: str, *, config=None, inputs: dict | None = None,
                   outputs: dict | None = None, metrics: dict | None = None) -> Path:
    path = Path(out_dir) / MANIFEST_NAME
    write_json_atomic(path, {
        "stage": stage,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "config": _plain(config),
        "inputs": inputs or {},
        "outputs": outputs or {},
        "metrics": metrics or {},
        "versions": package_versions(),
        "git_commit": git_commit(),
        "machine": platform.platform(),
    })
    return path


def read_manifest(out_dir: str | Path) -> dict | None:
    path = Path(out_dir) / MANIFEST_NAME
    return json.loads(path.read_text()) if path.exists() else None
