"""Trace sources, several at once: each a file, a folder or a datasets hub id, with an optional cap or weight.

A source is written ``PATH_OR_HUB_ID`` followed by any of ``:cap=N`` (at most the first N traces it gives),
``:weight=W`` (0 < W <= 1: that share of its problems, each problem's samples taken or left together,
chosen by a hash of the problem id, so the same every run), and for a hub id ``:config=NAME`` and
``:split=NAME`` (default train). ``runs/traces``, ``openr1.parquet:cap=20000``,
``open-r1/OpenR1-Math-220k:config=default:weight=0.25``.

A path that exists is read as a file or folder (r1_distill.traces); anything else shaped like ``owner/name``
is a hub dataset, streamed row by row by `datasets` (nothing is downloaded whole). One
:class:`~r1_distill.trace_formats.DatasetReader` reads every source, so the samples of a problem found in
several sources are numbered on across them and their duplicates are found."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from .errors import UserError
from .trace_formats import OWN_FORMAT, DatasetReader, is_own_record
from .traces import TraceRecord, iter_records_with

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
OPTIONS = ("cap", "weight", "config", "split")
_OPTION = re.compile(r"^(%s)=(.*)$" % "|".join(OPTIONS))


@dataclass(frozen=True)
class TraceSource:
    spec: str  # as given
    location: str  # the path or hub id
    cap: Optional[int] = None
    weight: Optional[float] = None
    config: Optional[str] = None
    split: str = "train"

    @property
    def is_hub(self) -> bool:
        return not Path(self.location).exists()

    def takes(self, problem_id: str) -> bool:
        """Whether `weight` takes this problem (all or none of its samples)."""
        if self.weight is None:
            return True
        draw = int.from_bytes(hashlib.sha256(problem_id.encode("utf-8")).digest()[:8], "big") / 2 ** 64
        return draw < self.weight


def parse_source(spec: str) -> TraceSource:
    """`PATH_OR_HUB_ID[:cap=N][:weight=W][:config=NAME][:split=NAME]`, checked: the path exists or it is a hub id."""
    location, options = spec.strip(), {}
    while True:  # options are the trailing `:key=value` parts; a colon anywhere else belongs to the path
        head, colon, tail = location.rpartition(":")
        match = _OPTION.match(tail) if colon else None
        if not match:
            break
        options[match.group(1)] = match.group(2)
        location = head
    cap = weight = None
    if "cap" in options:
        try:
            cap = int(options["cap"])
        except ValueError:
            cap = -1
        if cap < 0:
            raise UserError(f"--traces {spec}: cap={options['cap']} is not a whole number >= 0")
    if "weight" in options:
        try:
            weight = float(options["weight"])
        except ValueError:
            weight = -1.0
        if not 0 < weight <= 1:
            raise UserError(f"--traces {spec}: weight={options['weight']} is not a share in (0, 1]")
    source = TraceSource(spec=spec, location=location, cap=cap, weight=weight, config=options.get("config") or None,
                         split=options.get("split") or "train")
    if source.is_hub and not HUB_ID.match(location):
        raise UserError(f"no traces at {location}: pass a folder written by `r1-distill generate`, a .jsonl/.parquet "
                        "file or a datasets hub id (owner/name)")
    return source


def parse_sources(specs: list[str]) -> list[TraceSource]:
    if not specs:
        raise UserError("no trace sources: pass --traces PATH_OR_HUB_ID (repeat it to mix sources)")
    return [parse_source(spec) for spec in specs]


def source_records(source: TraceSource, reader: DatasetReader) -> Iterator[TraceRecord]:
    """The records a source gives, its weight and cap applied, read one at a time."""
    records = _hub_records(source, reader) if source.is_hub else iter_records_with(Path(source.location), reader)
    taken = 0
    for record in records:
        if source.cap is not None and taken >= source.cap:
            return
        if source.takes(record.problem_id):
            taken += 1
            yield record


def _hub_records(source: TraceSource, reader: DatasetReader) -> Iterator[TraceRecord]:
    import datasets

    rows = iter(datasets.load_dataset(source.location, name=source.config, split=source.split, streaming=True))
    first = next(rows, None)
    if first is None:
        return
    origin = f"hf://datasets/{source.location}" + (f"/{source.config}" if source.config else "") + f"@{source.split}"
    if (reader.format_name is None and is_own_record(first)) or reader.format_name == OWN_FORMAT:
        yield from _own_rows(_chain(first, rows), origin)
    else:
        yield from reader.read_rows(_chain(first, rows), origin)


def _chain(first: dict, rest: Iterator[dict]) -> Iterator[dict]:
    yield first
    yield from rest


def _own_rows(rows: Iterator[dict], origin: str) -> Iterator[TraceRecord]:
    for number, row in enumerate(rows, start=1):
        for key in ("sampling", "checks", "meta"):  # our Parquet keeps the nested fields as JSON text
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
        try:
            yield TraceRecord.model_validate(row)
        except Exception as exc:
            raise UserError(f"{origin}: record {number} is not a trace record: {exc}") from None
