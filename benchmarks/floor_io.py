"""Reading shared by the floor scripts: a whole file with pyarrow (`.gz`
decompressed by extension), and a JSON Lines parse that must not crash on
the few malformed lines some inputs contain — it drops them (no quarantine,
no accounting: the floor is the least work) and parses the rest at once.

No Beam, as the floor is defined: until 2026-12-03 files were read through
Beam's FileSystems, and importing it cost every floor run 1.4-1.7 s of start-up
(`python -X importtime`: 1.65 s for `floor_io`, 1.37 s of it `apache_beam`)."""
from __future__ import annotations

import io
import json
from typing import Callable

import pyarrow as pa
import pyarrow.json as pajson


def read_all(uri: str) -> bytes:
    with pa.input_stream(uri, compression="detect") as fh:
        return fh.read()


def each(keep: Callable[[dict], bool]) -> Callable[[list[tuple[bytes, dict]]], list[bytes]]:
    """A line selector from a per-record test."""
    return lambda recs: [line for line, r in recs if keep(r)]


def read_json_lenient(data: bytes, select: Callable[[list[tuple[bytes, dict]]], list[bytes]],
                      parse_options: pajson.ParseOptions | None = None) -> pa.Table:
    """Parse `data`; if that fails, parse only the lines `select` keeps among
    those that are JSON objects."""
    try:
        return pajson.read_json(io.BytesIO(data), parse_options=parse_options)
    except pa.ArrowInvalid:
        recs = []
        for line in data.split(b"\n"):
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if isinstance(r, dict):
                recs.append((line, r))
        return pajson.read_json(io.BytesIO(b"\n".join(select(recs))), parse_options=parse_options)
