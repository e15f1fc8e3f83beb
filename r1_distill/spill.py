"""An external sort for streams larger than memory: lines go into sorted runs on disk, a bounded buffer at a
time, and come back merged in key order (`heapq.merge` over the runs), so a stage can group a stream by a
key (all samples of one problem together) holding only what one group needs.

Each run line is ``json([key...])\\t<payload>``: the payload is a JSON text (JSON escapes tabs inside
strings), kept as text so that nothing is parsed twice. Ties keep the order they were added in (the sort
and the merge are both stable)."""

from __future__ import annotations

import heapq
import json
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, NamedTuple

BUFFER_BYTES = 32 << 20  # payload bytes held before a run is written
MAX_FAN_IN = 128  # runs open at once in a merge; more are merged down first
READ_BUFFER = 1 << 16


class Item(NamedTuple):
    key: tuple
    payload: str


class SortedSpill:
    """`add(key, payload)` any number of times, then iterate `merged()` once, in key order."""

    def __init__(self, folder: Path, buffer_bytes: int = BUFFER_BYTES):
        self.folder = Path(tempfile.mkdtemp(prefix="spill-", dir=folder))
        self.buffer_bytes = buffer_bytes
        self._buffer: list[tuple[tuple, str]] = []
        self._held = 0
        self._runs: list[Path] = []
        self.count = 0

    def add(self, key: tuple, payload: str) -> None:
        self._buffer.append((key, payload))
        self._held += len(payload)
        self.count += 1
        if self._held >= self.buffer_bytes:
            self._write_run()

    def _new_run(self) -> Path:
        path = self.folder / f"run-{len(self._runs):06d}.txt"
        self._runs.append(path)
        return path

    def _write_run(self) -> None:
        if not self._buffer:
            return
        self._buffer.sort(key=lambda item: item[0])
        with open(self._new_run(), "w", encoding="utf-8") as fh:
            for key, payload in self._buffer:
                fh.write(json.dumps(key, ensure_ascii=False) + "\t" + payload + "\n")
        self._buffer, self._held = [], 0

    def merged(self) -> Iterator[Item]:
        if not self._runs:  # everything fits in memory: no file at all
            self._buffer.sort(key=lambda item: item[0])
            buffer, self._buffer, self._held = self._buffer, [], 0
            for key, payload in buffer:
                yield Item(tuple(key), payload)
            return
        self._write_run()
        runs = self._runs
        while len(runs) > MAX_FAN_IN:  # merge down, so that few files are open at once
            group, runs = runs[:MAX_FAN_IN], runs[MAX_FAN_IN:]
            path = self._new_run()
            with open(path, "w", encoding="utf-8") as fh:
                for line in heapq.merge(*map(_lines, group), key=_key_of):
                    fh.write(line)
            for done in group:
                done.unlink()
            runs.append(path)
        for line in heapq.merge(*map(_lines, runs), key=_key_of):
            key, _, payload = line.partition("\t")
            yield Item(tuple(json.loads(key)), payload[:-1])

    def close(self) -> None:
        self._buffer = []
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "SortedSpill":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8", buffering=READ_BUFFER) as fh:
        yield from fh


def _key_of(line: str) -> list:
    return json.loads(line[: line.index("\t")])
