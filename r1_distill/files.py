"""Atomic writes and crash-safe appends: a file is either whole at its final path or absent."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed onto `path`."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o644)  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp_path, final)
    finally:
        tmp_path.unlink(missing_ok=True)


def cache_root() -> Path:
    """Where built artefacts are kept between runs: `$R1_DISTILL_CACHE`, else ~/.cache/r1-distill."""
    return Path(os.environ.get("R1_DISTILL_CACHE", Path.home() / ".cache" / "r1-distill"))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, data: object) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def append_lines(path: str | os.PathLike, lines: list[str]) -> None:
    """Append whole lines with one O_APPEND write each, then fsync: a kill can lose a line in
    flight but never leaves half of one (readers also drop an unterminated last line)."""
    if not lines:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for line in lines:
            os.write(fd, (line.rstrip("\n") + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Complete JSON lines of a file; an unterminated or corrupt last line (a crash) is skipped."""
    with open(path, "rb") as fh:  # a line at a time: a file of any size
        for number, raw in enumerate(fh, start=1):
            # what follows the last newline is empty, or a line a crash left unterminated: never a record
            if not raw.endswith(b"\n"):
                return
            if not raw.strip():
                continue
            try:
                yield json.loads(raw)
            except json.JSONDecodeError:
                raise ValueError(f"{path}:{number}: not a JSON line") from None


def repair_jsonl_tail(path: str | os.PathLike) -> None:
    """Cut an unterminated last line left by a crash, so appends start on a fresh line."""
    p = Path(path)
    if not p.exists() or p.stat().st_size == 0:
        return
    with open(p, "rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        fh.truncate(cut)
        fh.flush()
        os.fsync(fh.fileno())


def carry_tokenizer_files(source: str | Path, out: str | Path) -> None:
    """Copy what `save_pretrained` does not write but later stages read: llama.cpp's converter takes a
    SentencePiece vocabulary from tokenizer.model."""
    import shutil

    source, out = Path(source), Path(out)
    if not (source.is_dir() and (source / "tokenizer.model").is_file()):
        return
    shutil.copy(source / "tokenizer.model", out / "tokenizer.model")
    # transformers 5 no longer writes added_tokens_decoder, which tells the converter which pieces are added tokens
    src_config, out_config = source / "tokenizer_config.json", out / "tokenizer_config.json"
    if src_config.is_file() and out_config.is_file():
        added = json.loads(src_config.read_text(encoding="utf-8")).get("added_tokens_decoder")
        config = json.loads(out_config.read_text(encoding="utf-8"))
        if added and "added_tokens_decoder" not in config:
            config["added_tokens_decoder"] = added
            write_text_atomic(out_config, json.dumps(config, ensure_ascii=False, indent=1))
