"""Tolerant, vectorized parsing of input files into Arrow tables.

The fast path hands a whole block of lines to pyarrow's JSON reader. Only when
a block fails does it fall back to finding the offending lines (json.loads per
line, then bisection for type errors), so clean data pays nothing for
tolerance and dirty data costs time proportional to the dirt. Every record
ends up either in a parsed table or in a quarantine table with its raw bytes.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import re
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
from transforms.sources import SourceSpec

RAW_LIMIT = 1 << 20
SOURCE_COLS = ["source_uri", "source_record", "source_sha256", "record_sha256"]


@dataclass
class Bad:
    """Accumulates quarantined records of one file (columns, not dicts)."""
    line: list[int] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    error: list[str] = field(default_factory=list)

    def add(self, line: int, raw: bytes, code: str, error: str) -> None:
        self.line.append(line)
        self.raw.append(raw)
        self.code.append(code)
        self.error.append(error[:2000])

    def __len__(self) -> int:
        return len(self.line)

    def to_table(self, source: str, uri: str, sha: str) -> pa.Table:
        """Quarantine rows without the run columns (stamped at write time)."""
        n = len(self.line)
        return pa.table({
            "source": pa.array([source] * n, pa.string()),
            "source_uri": pa.array([uri] * n, pa.string()),
            "source_record": pa.array(self.line, pa.int64()),
            "source_sha256": pa.array([sha] * n, pa.string()),
            "record_sha256": pa.array([hashlib.sha256(r).hexdigest() for r in self.raw], pa.string()),
            "raw_record": pa.array([r[:RAW_LIMIT] for r in self.raw], pa.binary()),
            "raw_truncated": pa.array([len(r) > RAW_LIMIT for r in self.raw], pa.bool_()),
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


def _read_block(buf: bytes, nlines: int, schema: pa.Schema) -> pa.Table:
    opts = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore",
                               newlines_in_values=False)
    ropts = pajson.ReadOptions(use_threads=True, block_size=max(1 << 20, min(len(buf) + 1, 64 << 20)))
    t = pajson.read_json(io.BytesIO(buf), read_options=ropts, parse_options=opts)
    if t.num_rows != nlines:
        raise pa.ArrowInvalid(f"expected {nlines} rows, parsed {t.num_rows}")
    return t


_KIND_ERROR = re.compile(r"Column\(/([^)/]+)\) changed from")


def _parse_block(lines: list[bytes], schema: pa.Schema,
                 alternatives: Mapping[str, tuple] | None = None) -> pa.Table:
    """Parse a block with `schema`; when it fails because a column with
    alternatives arrived in another JSON kind, retry that column with its next
    alternative (guided by pyarrow's error), then convert back to the primary
    type. A block mixing kinds in one column still fails and is bisected."""
    buf = b"\n".join(lines)
    choice: dict[str, int] = {}
    current = schema
    while True:
        try:
            t = _read_block(buf, len(lines), current)
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
    if not isinstance(obj, dict):
        return "not_an_object", f"expected a JSON object, got {type(obj).__name__}"
    return None


def _parse_tolerant(lines: list[bytes], nums: list[int], schema: pa.Schema, bad: Bad,
                    alternatives: Mapping[str, tuple] | None = None
                    ) -> tuple[list[pa.Table], list[np.ndarray]]:
    """Parse lines; returns (tables, row-index arrays into `lines`) of the good ones."""
    try:
        return [_parse_block(lines, schema, alternatives)], [np.arange(len(lines))]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    ok_idx = []
    for i, line in enumerate(lines):
        why = _classify(line)
        if why:
            bad.add(nums[i], line, *why)
        else:
            ok_idx.append(i)
    tables, idxs = [], []

    def bisect(idx: list[int]) -> None:
        if not idx:
            return
        sub = [lines[i] for i in idx]
        try:
            tables.append(_parse_block(sub, schema, alternatives))
            idxs.append(np.array(idx))
            return
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            if len(idx) == 1:
                msg = str(e).split("\n")[0]
                bad.add(nums[idx[0]], lines[idx[0]], "wrong_type", f"field has the wrong type: {msg}")
                return
        mid = len(idx) // 2
        bisect(idx[:mid])
        bisect(idx[mid:])

    bisect(ok_idx)
    return tables, idxs


def _coalesce_nested(t: pa.Table, spec: SourceSpec) -> pa.Table:
    """Fold the nested `report` form and field aliases into canonical columns."""
    cols = {}
    nested = None
    if spec.nested_key and spec.nested_key in t.column_names:
        nested = t.column(spec.nested_key)
    for f in spec.schema:
        col = t.column(f.name) if f.name in t.column_names else pa.nulls(t.num_rows, f.type)
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
                 record_hashes: list[str] | None, uri: str, sha: str, bad: Bad
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
    if raws is not None:
        hashes = record_hashes if record_hashes is not None else [hashlib.sha256(r).hexdigest() for r in raws]
    else:
        hashes = record_hashes
    keep = ~drop
    if not keep.any():
        return None
    if drop.any():
        mask = pa.array(keep)
        t = t.filter(mask)
        lines_nums = lines_nums[keep]
        hashes = [h for h, k in zip(hashes, keep) if k]
    t = t.cast(spec.schema, safe=False) if t.schema != spec.schema else t
    n = t.num_rows
    return t.append_column("source_uri", pa.array([uri] * n, pa.string())) \
            .append_column("source_record", pa.array(lines_nums, pa.int64())) \
            .append_column("source_sha256", pa.array([sha] * n, pa.string())) \
            .append_column("record_sha256", pa.array(hashes, pa.string()))


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


def _split_lines(chunk: bytes) -> list[bytes]:
    lines = chunk.split(b"\n")
    return [l[:-1] if l.endswith(b"\r") else l for l in lines]


def iter_jsonl(uri: str, spec: SourceSpec, sha: str, stats: FileStats, bad: Bad,
               chunk_bytes: int = 16 << 20) -> Iterator[pa.Table]:
    """Yield canonical tables (one per ~chunk_bytes of text) from a JSON Lines file."""
    schema = spec.parse_schema()
    alternatives = spec.alternatives()
    line_no = 0
    carry = b""
    stream = fileio.iter_bytes(uri, decompress=True, size=chunk_bytes)

    def emit(lines: list[bytes]) -> Iterator[pa.Table]:
        nonlocal line_no
        nums, keep = [], []
        for l in lines:
            line_no += 1
            if l.strip():
                keep.append(l)
                nums.append(line_no)
            else:
                stats.blank_lines += 1
        if not keep:
            return
        stats.records += len(keep)
        # A single line beyond the JSON block limit is still one record: try it alone.
        tables, idxs = _parse_tolerant(keep, nums, schema, bad, alternatives)
        numarr = np.array(nums, dtype=np.int64)
        for t, idx in zip(tables, idxs):
            raws = [keep[i] for i in idx]
            out = finish_table(t, spec, numarr[idx], raws, None, uri, sha, bad)
            if out is not None:
                stats.parsed += out.num_rows
                yield out

    try:
        for chunk in stream:
            data = carry + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            carry = data[cut + 1:]
            yield from emit(_split_lines(data[:cut]))
    except (OSError, EOFError, ValueError) as e:  # truncated gzip, zlib errors
        import zlib  # noqa: F401  (zlib.error is an Exception subclass below)
        stats.error = f"read error after line {line_no}: {type(e).__name__}: {e}"
        tail = carry
        carry = b""
        line_no += 1
        stats.records += 1
        bad.add(line_no, tail, "unreadable_file",
                f"file is truncated or corrupt after line {line_no - 1} ({type(e).__name__}: {e}); "
                f"raw holds the partial data that followed")
        return
    except Exception as e:  # zlib.error is not an OSError
        if type(e).__name__ != "error":
            raise
        stats.error = f"read error after line {line_no}: {e}"
        line_no += 1
        stats.records += 1
        bad.add(line_no, carry, "unreadable_file", f"corrupt compressed data after line {line_no - 1}: {e}")
        return
    if carry:
        yield from emit(_split_lines(carry))


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
            hashes = [hashlib.sha256(r).hexdigest() for r in rows_json]
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


def read_file(uri: str, spec: SourceSpec, chunk_bytes: int = 16 << 20
              ) -> Iterator[tuple[str, object]]:
    """Read one input file. Yields ('records', table) …, then ('quarantine', table) if any,
    then ('stats', FileStats). Unreadable files become one quarantine row, never an exception."""
    stats = FileStats(uri=uri, source=spec.name)
    bad = Bad()
    try:
        meta = FileSystems.match([uri])[0].metadata_list
        stats.bytes = int(meta[0].size_in_bytes) if meta else 0
        stats.sha256 = fileio.sha256_file(uri)
        it = iter_parquet if is_parquet(uri) else iter_jsonl
        for t in it(uri, spec, stats.sha256, stats, bad):
            yield "records", t
    except (OSError, fileio.InputError) as e:
        stats.error = f"cannot read file: {e}"
        stats.records += 1
        bad.add(0, b"", "unreadable_file", f"cannot read {uri}: {e}")
    if len(bad):
        stats.quarantined = len(bad)
        yield "quarantine", bad.to_table(spec.name, uri, stats.sha256)
    yield "stats", stats
