"""Tolerant, vectorized parsing of input files into Arrow tables.

The fast path hands a whole block of lines to pyarrow's JSON reader. Only when
a block fails does it fall back to finding the offending lines (json.loads per
line, then bisection for type errors), so clean data pays nothing for
tolerance and dirty data costs time proportional to the dirt. Every record
ends up either in a parsed table or in a quarantine table with its raw bytes.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from apache_beam.io.filesystems import FileSystems

from schemas.quarantine import QUARANTINE
from transforms import fileio
from transforms.digests import sha256_hex, sha256_hex_arrow
from transforms.sources import SourceSpec

RAW_LIMIT = 1 << 20
# No genuine record is this large; a longer "line" (a file without newlines,
# a runaway field) is quarantined after streaming past it in bounded memory.
MAX_RECORD_BYTES = 8 << 20
# Epoch-based event times outside this window are unit mistakes (seconds for
# ms, ns for ms) or placeholders (0, 2999-…): quarantined, never partitioned.
PLAUSIBLE_YEARS = (2000, 2100)
SOURCE_COLS = ["source_uri", "source_record", "source_sha256", "record_sha256"]


@dataclass
class Bad:
    """Accumulates quarantined records of one file (columns, not dicts)."""
    line: list[int] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    error: list[str] = field(default_factory=list)
    sha: list[str | None] = field(default_factory=list)
    cut: list[bool] = field(default_factory=list)

    def add(self, line: int, raw: bytes, code: str, error: str,
            sha256: str | None = None, truncated: bool = False) -> None:
        """`sha256`/`truncated` describe a record too big to keep whole in memory."""
        self.line.append(line)
        self.raw.append(raw)
        self.code.append(code)
        self.error.append(error[:2000])
        self.sha.append(sha256)
        self.cut.append(truncated)

    def __len__(self) -> int:
        return len(self.line)

    def to_table(self, source: str, uri: str, sha: str) -> pa.Table:
        """Quarantine rows without the run columns (stamped at write time)."""
        n = len(self.line)
        return pa.table({
            "source": constant(source, n),
            "source_uri": constant(uri, n),
            "source_record": pa.array(self.line, pa.int64()),
            "source_sha256": constant(sha, n),
            "record_sha256": pa.array([h or hashlib.sha256(r).hexdigest() for r, h in zip(self.raw, self.sha)],
                                      pa.string()),  # few rows, some pre-hashed: per row is fine
            "raw_record": pa.array([r[:RAW_LIMIT] for r in self.raw], pa.binary()),
            "raw_truncated": pa.array([len(r) > RAW_LIMIT or c for r, c in zip(self.raw, self.cut)], pa.bool_()),
            "error_code": pa.array(self.code, pa.string()),
            "error": pa.array(self.error, pa.string()),
        })


QUARANTINE_PARTIAL = pa.schema([QUARANTINE.field(n) for n in
                                ["source", "source_uri", "source_record", "source_sha256",
                                 "record_sha256", "raw_record", "raw_truncated", "error_code", "error"]])


@dataclass
class FileStats:
    uri: str
    source: str
    sha256: str = ""
    bytes: int = 0
    records: int = 0
    parsed: int = 0
    quarantined: int = 0
    blank_lines: int = 0
    error: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _read_block(buf, nlines: int, schema: pa.Schema, longest: int = 64 << 20,
                whole: bool = False) -> pa.Table:
    """Parse `buf` (bytes or a zero-copy buffer) of `nlines` lines.

    `whole` parses it as one block on one thread: an error then names its
    row counted from the start of `buf`, which `_settle` uses to find a bad
    line without bisecting."""
    opts = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore",
                               newlines_in_values=False)
    # Blocks of a few MiB let pyarrow parse in parallel; a block must still
    # hold the longest line, so huge single records get a block of their own.
    size = max(2 << 20, longest + 1, len(buf) + 1 if whole else 0)
    ropts = pajson.ReadOptions(use_threads=not whole, block_size=size)
    t = pajson.read_json(pa.BufferReader(buf), read_options=ropts, parse_options=opts)
    if t.num_rows != nlines:
        raise pa.ArrowInvalid(f"expected {nlines} rows, parsed {t.num_rows}")
    return t


_KIND_ERROR = re.compile(r"Column\(/([^)/]+)\) changed from")
_ERROR_ROW = re.compile(r"^JSON parse error: .* in row (\d+)$")
_CONVERT_ERROR = re.compile(r"couldn't parse:(.+)$")


class NotUTF8(pa.ArrowInvalid):
    """Invalid UTF-8 in a block; `position` is the byte offset of the first bad byte."""

    def __init__(self, msg: str, position: int):
        super().__init__(msg)
        self.position = position


def _parse_block(lines: "list[bytes] | BlockLines", schema: pa.Schema,
                 alternatives: Mapping[str, tuple] | None = None, joined: bytes | None = None) -> pa.Table:
    """Parse a block with `schema` (see `_parse_buf`)."""
    buf = joined if joined is not None else b"\n".join(lines)
    longest = lines.longest() if isinstance(lines, BlockLines) else max(map(len, lines), default=0)
    return _parse_buf(buf, len(lines), longest, schema, alternatives)


def _parse_buf(buf, nlines: int, longest: int, schema: pa.Schema,
               alternatives: Mapping[str, tuple] | None = None, whole: bool = False,
               ascii_known: bool = False) -> pa.Table:
    """Parse `nlines` lines in `buf` with `schema`; when it fails because a
    column with alternatives arrived in another JSON kind, retry that column
    with its next alternative (guided by pyarrow's error), then convert back
    to the primary type. A block mixing kinds in one column still fails."""
    # ASCII (the common case) is valid UTF-8, checked without decoding.
    if not (ascii_known or _isascii(buf)):
        try:
            # pyarrow.json copies invalid UTF-8 into string columns unchecked;
            # the per-line fallback then names the offending lines.
            str(buf, "utf-8")
        except UnicodeDecodeError as e:
            raise NotUTF8(f"not UTF-8: {e}", e.start) from None
    choice: dict[str, int] = {}
    current = schema
    while True:
        try:
            t = _read_block(buf, nlines, current, longest, whole)
            break
        except pa.ArrowInvalid as e:
            m = _KIND_ERROR.search(str(e)) if alternatives else None
            name = m.group(1) if m else None
            if name not in (alternatives or {}) or choice.get(name, -1) + 1 >= len(alternatives[name]):
                raise
            choice[name] = choice.get(name, -1) + 1
            i = current.get_field_index(name)
            current = current.set(i, pa.field(name, alternatives[name][choice[name]][0], nullable=True))
    for name, k in choice.items():
        i = t.schema.get_field_index(name)
        t = t.set_column(i, schema.field(name), _conform(t.column(i), alternatives[name][k], schema.field(name).type))
    return t


def _isascii(buf) -> bool:
    """`bytes.isascii` for any buffer: a block read into a ReadBuffer is a
    memoryview, which has no isascii (numpy's max is as fast: 0.6 ms per
    16 MiB)."""
    if isinstance(buf, (bytes, bytearray)):
        return buf.isascii()
    a = np.frombuffer(buf, np.uint8)
    return not len(a) or int(a.max()) < 0x80


def _conform(col, alternative: tuple, primary: pa.DataType):
    """An alternatively-typed column, converted to the primary parse type."""
    convert = alternative[1]
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return convert(col) if convert is not None else col.cast(primary)


def _classify(line: bytes) -> tuple[str, str] | None:
    """Why a single line can't be a record, judged by the stdlib parser."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        return "bad_encoding", f"not UTF-8: {e}"
    try:
        obj = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(f"{c} is not a JSON number")))
    except ValueError as e:
        return "malformed_json", f"not JSON: {e}"
    except RecursionError:
        return "malformed_json", "not JSON: nested too deeply"
    if not isinstance(obj, dict):
        return "not_an_object", f"expected a JSON object, got {type(obj).__name__}"
    return None


def _parse_tolerant(lines: "list[bytes] | BlockLines", nums, schema: pa.Schema, bad: Bad,
                    alternatives: Mapping[str, tuple] | None = None, joined: bytes | None = None
                    ) -> tuple[list[pa.Table], list[np.ndarray]]:
    """Parse lines; returns (tables, row-index arrays into `lines`) of the good ones.
    `joined`, when given, is exactly `b"\\n".join(lines)` (the chunk as read),
    which spares re-joining what was just split."""
    if joined is None:
        joined = b"\n".join(lines)
    view = lines if isinstance(lines, BlockLines) else BlockLines(joined)
    led = view.n_led()
    if not led.any():
        try:
            return [_parse_block(lines, schema, alternatives, joined)], [np.arange(len(lines))]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return _settle(view, nums, schema, bad, alternatives, led)


def _settle(view: "BlockLines", nums, schema: pa.Schema, bad: Bad,
            alternatives: Mapping[str, tuple] | None, led: np.ndarray | None = None
            ) -> tuple[list[pa.Table], list[np.ndarray]]:
    """Good and bad lines of a block whose one-piece parse failed, or that
    holds lines led by "n" (`led`, see BlockLines.n_led): those are judged
    alone and never reach pyarrow.

    The block is cut in 16 spans, each parsed as one zero-copy slice; a span
    that fails is cut at the line pyarrow's error names ("in row N", or the
    byte offset of invalid UTF-8), and that line is parsed alone, so a bad
    line costs about one re-parse of its span. An error that names no line (a
    number too large for its column, a line holding two objects) halves the
    span instead. Every line ends up parsed in a good span or judged alone,
    so a wrong row number costs time, never a record.

    The version before cut failing parts into Python bytes per line,
    re-joined them, ran json.loads on every line of a small failing part and
    bisected the rest. The 2M-record benchmark's dirty witness file (8 bad
    lines in 111,728) took 0.90-0.99 CPU-s to read with it and 0.65-0.69
    with this, a clean one 0.41-0.54; with 100 bad lines, 1.57-1.74 and
    0.64-0.75. Same rows and quarantine rows either way."""
    n = len(view)
    mv = memoryview(view.block)
    starts, ends, lengths = view.starts, view.ends, view.lengths
    ascii_block = _isascii(view.block)
    good: list[tuple[int, int, pa.Table]] = []
    step = -(-n // 16) if n > 256 else n
    # Spans are pushed last first: the stack pops them, and every later
    # split, in line order, so the good tables come out in line order.
    spans = [(a, min(a + step, n)) for a in range(0, n, step)] if n else []
    rows = np.flatnonzero(led).tolist() if led is not None else []
    alone = set(rows)
    stack = _cut_at(spans, rows)[::-1] if rows else spans[::-1]
    while stack:
        a, b = stack.pop()
        if a >= b:
            continue
        if a in alone:
            line = view[a]
            bad.add(int(nums[a]), line, *(_classify(line) or ("malformed_json", "not a JSON object")))
            continue
        try:
            t = _parse_buf(mv[starts[a]:ends[b - 1]], b - a, int(lengths[a:b].max()), schema,
                           alternatives, whole=True, ascii_known=ascii_block)
            good.append((a, b, t))
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            # Kept without its traceback, whose frames hold views of the
            # block: with it, the exception and this frame form a cycle
            # that keeps a ReadBuffer's bytes viewed until the collector runs.
            err = e.with_traceback(None)
        if b - a == 1:
            line = view[a]
            why = _classify(line)
            if why is None:
                why = ("wrong_type", "field has the wrong type: " + str(err).split("\n")[0])
            bad.add(int(nums[a]), line, *why)
            continue
        row = _error_row(err, view, a, b)
        if row is not None:
            stack += [(row + 1, b), (row, row + 1), (a, row)]
        else:
            mid = (a + b) // 2
            stack += [(mid, b), (a, mid)]
    if not good:
        return [], []
    tables = [t for _, _, t in good]
    idx = np.concatenate([np.arange(a, b) for a, b, _ in good])
    if len(tables) > 1:
        # Downstream steps get one table per chunk in line order.
        return [pa.concat_tables(tables, promote_options="default")], [idx]
    return tables, [idx]


def _cut_at(spans: list[tuple[int, int]], rows: list[int]) -> list[tuple[int, int]]:
    """`spans` (in order, contiguous) with each of `rows` (sorted) made a span of its own."""
    out, k = [], 0
    for a, b in spans:
        while k < len(rows) and rows[k] < b:
            r = rows[k]
            out += [(a, r), (r, r + 1)]
            a, k = r + 1, k + 1
        out.append((a, b))
    return [(a, b) for a, b in out if a < b]


def _error_row(err: Exception, view: "BlockLines", a: int, b: int) -> int | None:
    """The line (index into `view`) a failed parse of lines [a, b) names, if any."""
    msg = str(err).split("\n")[0]
    if isinstance(err, NotUTF8):
        at = view.starts[a] + err.position
    elif (m := _ERROR_ROW.match(msg)) is not None:
        row = a + int(m.group(1))
        return row if row < b else None
    elif (m := _CONVERT_ERROR.search(msg)) is not None:
        # A value the column's type can't hold ("couldn't parse:1e400") is
        # named, not its row: its first occurrence in the span is a guess.
        lo, hi = int(view.starts[a]), int(view.ends[b - 1])
        at = bytes(view.block[lo:hi]).find(m.group(1).encode())
        if at < 0:
            return None
        at += lo
    else:
        return None
    row = int(np.searchsorted(view.ends, at, side="right"))
    return row if a <= row < b else None


def _coalesce_nested(t: pa.Table, spec: SourceSpec) -> pa.Table:
    """Fold the nested `report` form and field aliases into canonical columns."""
    cols = {}
    nested = None
    if spec.nested_key and spec.nested_key in t.column_names:
        nested = t.column(spec.nested_key)
    for f in spec.schema:
        col = t.column(f.name) if f.name in t.column_names else \
            pa.nulls(t.num_rows, spec.parse_types.get(f.name, f.type))
        if nested is not None and nested.null_count < len(nested):
            inner = pc.struct_field(nested, f.name)
            col = pc.coalesce(col, inner)
        for alias, canon in spec.aliases.items():
            if canon == f.name and alias in t.column_names:
                col = pc.coalesce(col, t.column(alias))
        cols[f.name] = col
    return pa.table(cols)


def _check_required(t: pa.Table, spec: SourceSpec) -> tuple[np.ndarray, list[str]]:
    req = spec.required()
    missing = np.zeros(t.num_rows, dtype=bool)
    per = []
    for name in req:
        m = t.column(name).is_null().to_numpy(zero_copy_only=False)
        per.append(m)
        missing |= m
    msgs = []
    for i in np.nonzero(missing)[0]:
        names = [req[k] for k, m in enumerate(per) if m[i]]
        msgs.append("missing required field(s): " + ", ".join(names))
    return missing, msgs


def finish_table(t: pa.Table, spec: SourceSpec, lines_nums: np.ndarray, raws: list[bytes] | None,
                 record_hashes: pa.Array | None, uri: str, sha: str, bad: Bad
                 ) -> pa.Table | None:
    """Canonicalise, route rows failing required/normalise checks to `bad`, add source columns."""
    t = _coalesce_nested(t, spec)
    drop = np.zeros(t.num_rows, dtype=bool)
    missing, msgs = _check_required(t, spec)
    for k, i in enumerate(np.nonzero(missing)[0]):
        bad.add(int(lines_nums[i]), raws[i] if raws is not None else _row_json(t, i), "missing_field", msgs[k])
    drop |= missing
    if spec.normalize is not None:
        t, nbad, nmsgs = spec.normalize(t)
        if nbad is not None:
            nbad = np.asarray(nbad, dtype=bool) & ~drop
            for k, i in enumerate(np.nonzero(nbad)[0]):
                msg = nmsgs[i] if nmsgs is not None else "bad value"
                bad.add(int(lines_nums[i]), raws[i] if raws is not None else _row_json(t, i), "bad_value", msg)
            drop |= nbad
    tbad, tmsgs = _implausible_times(t, spec)
    tbad &= ~drop
    for i in np.nonzero(tbad)[0]:
        bad.add(int(lines_nums[i]), raws[i] if raws is not None else _row_json(t, i), "bad_value", tmsgs[int(i)])
    drop |= tbad
    if raws is not None:
        hashes = record_hashes if record_hashes is not None else sha256_hex(raws)
    else:
        hashes = record_hashes
    keep = ~drop
    if not keep.any():
        return None
    if drop.any():
        mask = pa.array(keep)
        t = t.filter(mask)
        lines_nums = lines_nums[keep]
        hashes = hashes.filter(mask)
    t = t.cast(spec.schema, safe=False) if t.schema != spec.schema else t
    n = t.num_rows
    return t.append_column("source_uri", constant(uri, n)) \
            .append_column("source_record", pa.array(lines_nums, pa.int64())) \
            .append_column("source_sha256", constant(sha, n)) \
            .append_column("record_sha256", hashes)


def constant(value, n: int, type_: pa.DataType = pa.string()) -> pa.Array:
    """A column repeating one value, built without an n-long Python list."""
    return pa.repeat(pa.scalar(value, type_), n)


_EPOCH_UNITS = {"s": 1, "ms": 10**3, "us": 10**6, "µs": 10**6, "ns": 10**9}


def _epoch_unit(f: pa.Field) -> str | None:
    unit = (f.metadata or {}).get(b"unit", b"").decode()
    if unit.endswith("since Unix epoch"):
        return unit.split()[0] if unit.split()[0] in _EPOCH_UNITS else None
    return None


def _implausible_times(t: pa.Table, spec: SourceSpec) -> tuple[np.ndarray, dict[int, str]]:
    """Rows whose epoch-time fields (declared by their unit) fall outside
    PLAUSIBLE_YEARS, with a message guessing the unit that was meant."""
    import datetime as _dt
    n = t.num_rows
    bad = np.zeros(n, dtype=bool)
    msgs: dict[int, str] = {}
    lo_s = _dt.datetime(PLAUSIBLE_YEARS[0], 1, 1, tzinfo=_dt.timezone.utc).timestamp()
    hi_s = _dt.datetime(PLAUSIBLE_YEARS[1], 1, 1, tzinfo=_dt.timezone.utc).timestamp()
    for f in spec.schema:
        unit = _epoch_unit(f)
        if unit is None or f.name not in t.column_names or not pa.types.is_integer(t.column(f.name).type):
            continue
        v = t.column(f.name).to_numpy(zero_copy_only=False)
        if v.dtype == object:
            v = np.array([np.nan if x is None else x for x in v], dtype=np.float64)
        v = v.astype(np.float64)
        per = _EPOCH_UNITS[unit]
        with np.errstate(invalid="ignore"):
            out = ~np.isnan(v) & ((v < lo_s * per) | (v >= hi_s * per))
        for i in np.nonzero(out & ~bad)[0]:
            x = v[i]
            guess = [u for u, p in _EPOCH_UNITS.items() if u != "µs" and lo_s * p <= x < hi_s * p]
            hint = f"; looks like {guess[0]} since epoch, expected {unit}" if guess else ""
            try:
                when = _dt.datetime.fromtimestamp(x / per, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            except (OverflowError, OSError, ValueError):
                when = "out of range"
            msgs[int(i)] = (f"{f.name}={int(x)} is {when} read as {unit} since Unix epoch, outside "
                            f"{PLAUSIBLE_YEARS[0]}–{PLAUSIBLE_YEARS[1]}{hint}")
        bad |= out
    return bad, msgs


def _row_json(t: pa.Table, i: int) -> bytes:
    return canonical_json(t.slice(i, 1).to_pylist()[0])


def canonical_json(row: dict) -> bytes:
    def default(o):
        if isinstance(o, bytes):
            import base64
            return base64.b64encode(o).decode()
        return str(o)

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        return v
    row = {k: clean(v) for k, v in row.items()}
    return json.dumps(row, sort_keys=True, separators=(",", ":"), default=default).encode()


_SPACE = np.frombuffer(b" \t\n\r\x0b\x0c", np.uint8)


class BlockLines:
    """The lines of a block (split at b"\\n"), found with numpy instead of
    `bytes.split`: no Python object per line, and the GIL is free while the
    newlines are searched.

    `bytes.split` made 60k bytes objects per 16 MiB chunk, all under the GIL
    (2M witness records, 2 Beam threads: 2.0 s of the 16.4 s the GIL was
    held), only to hand them to the record hash. A line is still available
    as bytes by index (`lines[i]`), for the few that go to quarantine, and
    all of them as one Arrow column (`arrow()`) for the hash.

    `block` is bytes or a memoryview into a ReadBuffer (which the next read
    overwrites): lines come out as bytes copies, and nothing built on the
    block itself (`arrow()`) may outlive the chunk."""

    def __init__(self, block: "bytes | memoryview"):
        nl = np.flatnonzero(np.frombuffer(block, np.uint8) == 10)
        self.block = block
        self.starts = np.concatenate(([0], nl + 1))
        self.ends = np.append(nl, len(block))
        self.lengths = self.ends - self.starts

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i) -> bytes:
        return bytes(self.block[self.starts[i]:self.ends[i]])

    def __iter__(self) -> Iterator[bytes]:
        return (bytes(self.block[a:b]) for a, b in zip(self.starts.tolist(), self.ends.tolist()))

    def longest(self) -> int:
        return int(self.lengths.max())

    @functools.cached_property
    def _indented(self) -> np.ndarray:
        """Which non-empty lines start with whitespace (as bytes.strip counts it)."""
        return (self.lengths > 0) & np.isin(self._first, _SPACE)

    @functools.cached_property
    def _first(self) -> np.ndarray:
        """Each line's first byte (a placeholder for an empty line: mask with lengths > 0)."""
        if not len(self.block):
            return np.zeros(len(self), np.uint8)
        return np.frombuffer(self.block, np.uint8)[np.minimum(self.starts, len(self.block) - 1)]

    def any_indented(self) -> bool:
        return bool(self._indented.any())

    def n_led(self) -> np.ndarray:
        """Which lines start with "n" after any leading whitespace: `null` or
        not JSON, never an object. pyarrow 25's JSON reader crashes the
        process (SIGSEGV) on a block whose first value is `null`, and makes
        a row of nulls of a `null` line anywhere else (which would then pass
        for a record missing its fields); such lines are judged alone instead."""
        out = (self.lengths > 0) & (self._first == ord("n"))
        for i in np.flatnonzero(self._indented).tolist():
            out[i] = self[i].lstrip()[:1] == b"n"
        return out

    def arrow(self) -> pa.Array:
        """Every line as one binary_view column over the block itself, for
        the record hash: no copy of the block, where a large_binary column
        needed one without its newlines (4 ms per 16 MiB chunk), and polars
        hashes views without converting them first.

        Arrow's view layout, 16 bytes a line: the length, then a line of at
        most 12 bytes inline, or its first 4 bytes, buffer 0 and its offset."""
        n = len(self)
        views = np.zeros((n, 16), np.uint8)
        words = views.view(np.int32)
        lengths, starts = self.lengths, self.starts
        words[:, 0] = lengths
        raw = np.frombuffer(self.block, np.uint8)
        if len(raw):
            long = np.flatnonzero(lengths > 12)
            views[long, 4:8] = raw[starts[long, None] + np.arange(4)]
            words[long, 3] = starts[long]
            short = np.flatnonzero(lengths <= 12)
            if len(short):
                k = np.arange(12)
                inline = raw[np.minimum(starts[short, None] + k, len(raw) - 1)]
                inline[k >= lengths[short, None]] = 0
                views[short, 4:] = inline
        return pa.Array.from_buffers(pa.binary_view(), n, [None, pa.py_buffer(views), pa.py_buffer(self.block)])


class _Picked:
    """`lines[idx[i]]` on demand. A chunk's good lines are hashed as one
    column; only the few that go on to quarantine need their own bytes
    (a bytes object for each of 111k lines took 0.05 s of the dirty file)."""

    def __init__(self, lines: "BlockLines", idx: np.ndarray):
        self.lines, self.idx = lines, idx

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i) -> bytes:
        return self.lines[self.idx[i]]


def _split_lines(chunk: bytes) -> list[bytes]:
    lines = chunk.split(b"\n")
    if b"\r" not in chunk:
        return lines
    return [l[:-1] if l.endswith(b"\r") else l for l in lines]


def iter_jsonl(uri: str, spec: SourceSpec, sha: str, stats: FileStats, bad: Bad,
               chunk_bytes: int = 16 << 20, buffer: "ReadBuffer | None" = None) -> Iterator[pa.Table]:
    """Yield canonical tables (one per ~chunk_bytes of text) from a JSON Lines file.

    The file is read chunk_bytes at a time into `buffer` (see ReadBuffer);
    a block is the chunk's complete lines, preceded by the unfinished line
    the previous chunk left at the front of the buffer."""
    schema = spec.parse_schema()
    alternatives = spec.alternatives()
    line_no = 0
    rb = buffer if buffer is not None else ReadBuffer()

    def emit(block: "bytes | memoryview", has_cr: bool) -> Iterator[pa.Table]:
        nonlocal line_no
        if not has_cr:
            view = BlockLines(block)
            if view.lengths.min() > 0 and view.longest() <= MAX_RECORD_BYTES and not view.any_indented():
                # Fast path: no blank, indented, CR-terminated or oversized
                # line in this chunk (the common case); the block itself is
                # what the JSON reader gets, and the lines are hashed as one
                # column. pyarrow skips a line of only spaces without a row,
                # so with one in the block its row count could still match
                # (a line holding two objects makes up for it) while every
                # row between them takes its neighbour's line number, raw
                # text and hash; such lines are blank lines, found below.
                yield from emit_clean(block, view)
                return
        lines = _split_lines(bytes(block))
        nums, keep = [], []
        for l in lines:
            line_no += 1
            if len(l) > MAX_RECORD_BYTES:
                too_large(l[:RAW_LIMIT], hashlib.sha256(l).hexdigest(), len(l))
            elif l.strip():
                keep.append(l)
                nums.append(line_no)
            else:
                stats.blank_lines += 1
        if not keep:
            return
        yield from finish(keep, np.array(nums, dtype=np.int64))

    def emit_clean(block: bytes, view: BlockLines) -> Iterator[pa.Table]:
        nonlocal line_no
        n = len(view)
        nums = np.arange(line_no + 1, line_no + 1 + n, dtype=np.int64)
        line_no += n
        yield from finish(view, nums, joined=block)

    def finish(lines: "list[bytes] | BlockLines", nums: np.ndarray, joined: bytes | None = None
               ) -> Iterator[pa.Table]:
        """Parse kept lines and finish their tables. A chunk's lines as a
        BlockLines are hashed in one column; a list of bytes by hashlib."""
        stats.records += len(lines)
        tables, idxs = _parse_tolerant(lines, nums, schema, bad, alternatives, joined)
        hashes = sha256_hex_arrow(lines.arrow()) if tables and isinstance(lines, BlockLines) else None
        for t, idx in zip(tables, idxs):
            whole = len(idx) == len(lines)
            raws = lines if whole else \
                _Picked(lines, idx) if isinstance(lines, BlockLines) else [lines[i] for i in idx]
            hashed = hashes if hashes is None or whole else hashes.take(pa.array(idx))
            out = finish_table(t, spec, nums[idx], raws, hashed, uri, sha, bad)
            if out is not None:
                stats.parsed += out.num_rows
                yield out

    def too_large(head: bytes, digest: str, size: int) -> None:
        stats.records += 1
        bad.add(line_no, head, "record_too_large",
                f"line {line_no} is {size:,} bytes, over the {MAX_RECORD_BYTES:,}-byte record limit "
                f"(a file without line breaks, or a runaway field); raw holds its start",
                sha256=digest, truncated=True)

    # A line longer than MAX_RECORD_BYTES is streamed past: its start and hash kept.
    skip_head: bytes | None = None
    skip_hash = None
    skip_size = 0
    n_chunks = 0
    have = 0  # bytes of an unfinished line at the front of the buffer
    with contextlib.ExitStack() as opened:
        stream = None
        while True:
            try:
                if stream is None:
                    stream = opened.enter_context(fileio.open_input(uri, size=chunk_bytes))
                got = rb.fill(stream, have, chunk_bytes)
            except (OSError, EOFError, ValueError, zlib.error) as e:  # truncated or corrupt compressed data
                if skip_head is not None:
                    line_no += 1
                    too_large(skip_head, skip_hash.hexdigest(), skip_size)
                    skip_head = None
                what = "truncated" if isinstance(e, EOFError) else "corrupt"
                stats.error = f"{what} after line {line_no}: {e}"
                line_no += 1
                stats.records += 1
                bad.add(line_no, bytes(rb.buf[:have]), "unreadable_file",
                        f"file is {what} after line {line_no - 1} ({type(e).__name__}: {e}); "
                        f"raw holds the partial data that followed")
                return
            if not got:
                break
            n_chunks += 1
            buf, end, start = rb.buf, have + got, 0
            if n_chunks == 1 and buf.startswith(b"\xef\xbb\xbf", 0, end):
                start = 3  # UTF-8 byte-order mark
            if skip_head is not None:
                cut = buf.find(b"\n", 0, end)
                with memoryview(buf) as mv:
                    skip_hash.update(mv[:end if cut < 0 else cut])
                skip_size += end if cut < 0 else cut
                if cut < 0:
                    have = 0
                    continue
                line_no += 1
                too_large(skip_head, skip_hash.hexdigest(), skip_size)
                skip_head = None
                start = cut + 1
            cut = buf.rfind(b"\n", start, end)
            with memoryview(buf) as mv:
                if cut < 0:  # no line ends in this chunk: all of it waits for the next
                    have = end - start
                    if start:
                        mv[:have] = mv[start:end]
                    if have > MAX_RECORD_BYTES:
                        skip_head, skip_hash, skip_size = bytes(mv[:RAW_LIMIT]), hashlib.sha256(mv[:have]), have
                        have = 0
                    continue
                # The block is a view: nothing made from it may outlive this
                # step (parsed tables and quarantined lines are copies).
                yield from emit(mv[start:cut], buf.find(b"\r", start, cut) >= 0)
                have = end - cut - 1
                mv[:have] = mv[cut + 1:end]
            if n_chunks == 1:
                _pause_once("read")
    if skip_head is not None:
        line_no += 1
        too_large(skip_head, skip_hash.hexdigest(), skip_size)
    elif have:
        with memoryview(rb.buf) as mv:
            yield from emit(mv[:have], rb.buf.find(b"\r", 0, have) >= 0)


class ReadBuffer:
    """The buffer a JSON Lines reader fills with each chunk of a file, kept
    by a worker thread from file to file (see transforms/beam/read.py).

    Reading each chunk as a new bytes object, then joining it to the
    unfinished line before it, copied every input byte twice into memory
    new to the process, which is dear on this VM (see fileio.writing); here
    a chunk is read straight behind the unfinished line, and a block is a
    memoryview of the buffer. Measured over the 2M-record benchmark's 16
    witness files (read, hash and split into lines, one thread): 1.04 CPU-s
    before, 0.68 s with one reused buffer.

    It grows as data arrives, so a small file takes a small buffer, and is
    never shrunk: a worker reading large files keeps chunk_bytes plus the
    longest unfinished line (at most MAX_RECORD_BYTES)."""

    GROW = 1 << 20

    def __init__(self):
        self.buf = bytearray()

    def fill(self, stream, at: int, want: int) -> int:
        """Read `want` bytes of `stream` into the buffer from offset `at`
        (fewer only at its end); how many were read."""
        got = 0
        while got < want:
            pos = at + got
            if len(self.buf) <= pos:
                self._grow(pos + min(want - got, max(self.GROW, len(self.buf))), keep=pos)
            room = min(want - got, len(self.buf) - pos)
            with memoryview(self.buf) as mv:
                k = stream.readinto(mv[pos:pos + room])
            got += k or 0
            if not k or k < room:
                # A short read: the end of the stream, or a decoder holding
                # back an error until its next read (fileio._Pieces), so the
                # bytes decoded before a cut are parsed first.
                break
        return got

    def _grow(self, size: int, keep: int) -> None:
        try:
            self.buf.extend(bytes(size - len(self.buf)))
        except BufferError:
            # Views of the buffer are still alive: unreachable garbage in a
            # reference cycle (an exception's traceback holds the frames that
            # parsed a block) that the cyclic collector has not freed yet. A
            # bytearray cannot grow while viewed, so this moves to a new one
            # and leaves the old to them.
            new = bytearray(size)
            new[:keep] = self.buf[:keep]
            self.buf = new


def _pause_once(point: str) -> None:
    from transforms import hooks
    hooks.pause(point)


def iter_parquet(uri: str, spec: SourceSpec, sha: str, stats: FileStats, bad: Bad,
                 batch_rows: int = 65536) -> Iterator[pa.Table]:
    """Yield canonical tables from a Parquet file; rows that can't be cast are quarantined."""
    with FileSystems.open(uri, compression_type="uncompressed") as fh:
        try:
            pf = pq.ParquetFile(fh)
        except Exception as e:
            stats.error = f"not a readable Parquet file: {e}"
            stats.records += 1
            bad.add(0, fileio.read_bytes(uri, decompress=False)[:RAW_LIMIT] if stats.bytes < 64 << 20 else b"",
                    "unreadable_file", f"not a readable Parquet file: {e}")
            return
        row0 = 0
        for rb in pf.iter_batches(batch_size=batch_rows):
            t = pa.Table.from_batches([rb])
            n = t.num_rows
            stats.records += n
            nums = np.arange(row0, row0 + n, dtype=np.int64)
            row0 += n
            rows_json = [canonical_json(r) for r in t.to_pylist()]
            hashes = sha256_hex(rows_json)
            try:
                t2 = _cast_columns(t, spec)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
                for i in range(n):
                    bad.add(int(nums[i]), rows_json[i], "wrong_type",
                            f"Parquet column type does not fit the {spec.name} schema: {e}")
                continue
            out = finish_table(t2, spec, nums, rows_json, hashes, uri, sha, bad)
            if out is not None:
                stats.parsed += out.num_rows
                yield out


def _cast_columns(t: pa.Table, spec: SourceSpec) -> pa.Table:
    cols = {}
    ps = spec.parse_schema()
    alternatives = spec.alternatives()
    for f in ps:
        if f.name in t.column_names:
            col = t.column(f.name)
            if col.type != f.type:
                col = _cast_or_alternative(col, f, alternatives.get(f.name, ()))
            cols[f.name] = col
    return pa.table(cols) if cols else pa.table({spec.schema[0].name: pa.nulls(t.num_rows, spec.schema[0].type)})


def _cast_or_alternative(col, f: pa.Field, alternatives: tuple):
    """Safe cast to the parse type (overflow / bad text raises); a column stored
    as one of the field's alternative types goes through its converter."""
    try:
        return col.cast(f.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        for alt in alternatives:
            try:
                return _conform(col.cast(alt[0]), alt, f.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                continue
        raise


def is_parquet(uri: str) -> bool:
    return uri.lower().endswith((".parquet", ".pq"))


def read_file(uri: str, spec: SourceSpec, chunk_bytes: int = 16 << 20, buffer: ReadBuffer | None = None
              ) -> Iterator[tuple[str, object]]:
    """Read one input file. Yields ('records', table) …, then ('quarantine', table) if any,
    then ('stats', FileStats). Unreadable files become one quarantine row, never an exception.
    `buffer` is the calling thread's ReadBuffer, reused from file to file."""
    stats = FileStats(uri=uri, source=spec.name)
    bad = Bad()
    special = fileio.is_special(uri)
    if special:
        stats.error = special
        stats.records = stats.quarantined = 1
        bad.add(0, b"", "unreadable_file", f"cannot read {special}")
        yield "quarantine", bad.to_table(spec.name, uri, "")
        yield "stats", stats
        return
    try:
        meta = FileSystems.match([uri])[0].metadata_list
        stats.bytes = int(meta[0].size_in_bytes) if meta else 0
        stats.sha256 = fileio.sha256_file(uri)
        tables = iter_parquet(uri, spec, stats.sha256, stats, bad) if is_parquet(uri) else \
            iter_jsonl(uri, spec, stats.sha256, stats, bad, chunk_bytes, buffer)
        for t in tables:
            yield "records", t
    except (OSError, fileio.InputError) as e:
        stats.error = f"cannot read file: {e}"
        stats.records += 1
        bad.add(0, b"", "unreadable_file", f"cannot read {uri}: {e}")
    if stats.records == 0:
        # Nothing to account for would make the file invisible in the outputs.
        stats.records = 1
        what = f"only {stats.blank_lines} blank line(s)" if stats.blank_lines else f"{stats.bytes} bytes"
        bad.add(0, b"", "empty_file", f"{uri} holds no records ({what})")
    if len(bad):
        stats.quarantined = len(bad)
        yield "quarantine", bad.to_table(spec.name, uri, stats.sha256)
    yield "stats", stats


def duplicate_file(uri: str, spec: SourceSpec, original: str) -> Iterator[tuple[str, object]]:
    """A file byte-identical to an input already read under another name:
    reading it again would duplicate every record, so it becomes one
    quarantine row naming the original (same stream shape as read_file)."""
    stats = FileStats(uri=uri, source=spec.name, records=1, quarantined=1)
    bad = Bad()
    try:
        stats.bytes = int(FileSystems.match([uri])[0].metadata_list[0].size_in_bytes)
        stats.sha256 = fileio.sha256_file(uri)
    except (OSError, IndexError, fileio.InputError):
        pass
    stats.error = f"duplicate of {original}"
    bad.add(0, b"", "duplicate_file",
            f"{uri} has the same bytes (sha256 {stats.sha256[:12]}…) as {original}, already ingested; not read again")
    yield "quarantine", bad.to_table(spec.name, uri, stats.sha256)
    yield "stats", stats
