"""Write validated tables as staged, hive-partitioned Parquet and report
what was written as small receipt dicts (the driver builds the manifest and
commits from receipts; workers never commit)."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from transforms import fileio
from transforms.parse import constant

PARQUET_OPTIONS = dict(compression="zstd", compression_level=1, row_group_size=128 * 1024)
# Columns unique per row (hashes, payloads, signatures, keys of many
# hotspots) get neither a dictionary nor min/max statistics: both would only
# cost time (measured on a witness part: 104 → 86 ms per 81k rows) without
# helping a reader prune. Numbers are written plain: zstd compresses repeats,
# and a failed dictionary attempt on timestamps or distances is pure cost.
_UNIQUE = {"data", "signature", "record_sha256", "beacon_record_sha256", "local_entropy", "remote_entropy",
           "image_sha256", "frame_id", "raw_record", "image_uri", "pub_key", "beacon_pub_key", "error"}


def parquet_bytes(t: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    _write_parquet(t, sink)
    return sink.getvalue()


def write_parquet(uri: str, t: pa.Table) -> tuple[int, str]:
    """Write `t` as Parquet at `uri` (atomically); its size and sha256.

    A local file is streamed to disk and hashed by reading it back from the
    page cache: cheaper here than building it in memory first (see
    fileio.writing). An object store gets one upload of the bytes built in
    memory, not an upload and a download."""
    if "://" in uri:
        data = parquet_bytes(t)
        fileio.write_bytes(uri, data)
        return len(data), hashlib.sha256(data).hexdigest()
    with fileio.writing(uri) as f:
        _write_parquet(t, f)
    return fileio.size_and_sha256(uri)


def _write_parquet(t: pa.Table, sink) -> None:
    dict_cols = [f.name for f in t.schema if f.name not in _UNIQUE
                 and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_list(f.type))]
    stats_cols = [f.name for f in t.schema if f.name not in _UNIQUE]
    pq.write_table(t, sink, use_dictionary=dict_cols, write_statistics=stats_cols, **PARQUET_OPTIONS)


def date_parts(t: pa.Table, column: str | None, unit: str, fixed: str | None
               ) -> list[tuple[str | None, np.ndarray | None]]:
    """The table's rows by UTC date (YYYY-MM-DD) of their event time, or one
    fixed date: [(date, row mask, or None for every row)], sorted by date.
    Rows without a time, or outside the calendar, go to "unknown".

    Works on day numbers, not a per-row date string: most parts hold one
    day, and naming 80k rows cost a Python string each, under the GIL."""
    if fixed is not None or column is None:
        return [(fixed, None)]
    col = t.column(column)
    if pa.types.is_date32(col.type):  # a calendar-day column: its value is already the day
        col, unit = pc.cast(col, pa.int32()), "D"
    per_day = {"ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000, "s": 86_400, "D": 1}[unit]
    raw = pc.cast(col, pa.int64())
    days = np.floor_divide(pc.fill_null(raw, 0).to_numpy(zero_copy_only=False), per_day)
    null = raw.is_null().to_numpy(zero_copy_only=False) if raw.null_count else None
    if null is None and len(days) and days.min() == days.max():
        return [(_day_name(int(days[0])), None)]
    uniq, inv = np.unique(days, return_inverse=True)
    labels = [_day_name(int(d)) for d in uniq] + ["unknown"]  # several days may be "unknown"
    code = inv if null is None else np.where(null, len(uniq), inv)
    present = np.flatnonzero(np.bincount(code, minlength=len(labels)))
    names = sorted({labels[c] for c in present})
    if len(names) == 1:
        return [(names[0], None)]
    return [(name, np.isin(code, [c for c, label in enumerate(labels) if label == name])) for name in names]


def _day_name(day: int) -> str:
    try:
        return datetime.fromtimestamp(day * 86_400, tz=timezone.utc).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return "unknown"


def counts(t: pa.Table, accounted: bool = True) -> dict:
    """Per source file × verdict counts, and reason counts (vectorized).

    `accounted=False` is for derived tables (aggregates without per-row
    `source_uri`): no per-file counts, so the manifest's per-file accounting
    ignores them; their verdict counts (or row count) go in `totals`."""
    per: dict[str, dict[str, int]] = {}
    if not accounted:
        out: dict = {"per_source": {}, "reasons": {}}
        if "verdict" in t.column_names:
            vc = pc.value_counts(t.column("verdict")).to_pylist() if t.num_rows else []
            out["totals"] = {d["values"]: d["counts"] for d in vc}
            flat = pc.list_flatten(t.column("reasons"))
            out["reasons"] = {d["values"]: d["counts"] for d in pc.value_counts(flat).to_pylist()} if len(flat) else {}
        else:
            out["totals"] = {"rows": t.num_rows}
        return out
    if "verdict" in t.column_names:
        g = t.group_by(["source_uri", "verdict"]).aggregate([("verdict", "count")])
        for uri, v, c in zip(g.column("source_uri").to_pylist(), g.column("verdict").to_pylist(),
                             g.column("verdict_count").to_pylist()):
            per.setdefault(uri, {})[v] = c
        flat = pc.list_flatten(t.column("reasons"))
        vc = pc.value_counts(flat) if len(flat) else []
        reasons = {d["values"]: d["counts"] for d in (vc.to_pylist() if len(flat) else [])}
    else:
        g = t.group_by(["source_uri"]).aggregate([("source_uri", "count")])
        for uri, c in zip(g.column("source_uri").to_pylist(), g.column("source_uri_count").to_pylist()):
            per.setdefault(uri, {})["quarantined"] = c
        reasons = {}
    return {"per_source": per, "reasons": reasons}


class WriteParquet(beam.DoFn):
    """(part_id, table) → staged Parquet per date partition + a receipt each.

    File names are `part-<part_id>.parquet` inside `date=…`: deterministic, so
    a retried task overwrites rather than duplicates."""

    def __init__(self, staging: str, table: str, schema: pa.Schema, run_columns: dict,
                 date_column: str | None = None, date_unit: str = "ms", fixed_date: str | None = None,
                 accounted: bool = True):
        self.staging, self.table, self.schema = staging, table, schema
        self.run_columns = run_columns
        self.accounted = accounted  # False: derived table, not counted against input files
        self.date_column, self.date_unit, self.fixed_date = date_column, date_unit, fixed_date

    def process(self, element):
        part_id, t = element
        if t.num_rows == 0:
            return
        t = self._stamp(t)
        for d, rows in date_parts(t, self.date_column, self.date_unit, self.fixed_date):
            sub = t if rows is None else t.filter(pa.array(rows))
            rel = f"{self.table}/date={d}/part-{part_id}.parquet"
            size, sha = write_parquet(fileio.join(self.staging, "data", rel), sub)
            yield {"receipt": "output", "table": self.table, "date": d, "path": rel,
                   "rows": sub.num_rows, "bytes": size, "sha256": sha, **counts(sub, self.accounted)}

    def _stamp(self, t: pa.Table) -> pa.Table:
        n = t.num_rows
        cols = {}
        for f in self.schema:
            if f.name in t.column_names:
                cols[f.name] = t.column(f.name)
            elif f.name in self.run_columns:
                v = self.run_columns[f.name]
                if f.name == "ingested_at":
                    v = datetime.fromisoformat(v)
                cols[f.name] = constant(v, n, f.type)
            else:
                cols[f.name] = pa.nulls(n, f.type)
        return pa.table(cols, schema=self.schema)


class WriteQuarantine(WriteParquet):
    """Quarantine rows of one input file, named after that file."""

    def process(self, table):
        from transforms.beam.read import quarantine_part
        yield from super().process(quarantine_part(table))


class WriteReceipt(beam.DoFn):
    """Terminal step: persist each receipt as a small JSON file in staging.

    Named by content-derived ids, so retries are idempotent. This is the one
    leaf of the graph, which the DaskRunner needs (it computes the last stage)."""

    def __init__(self, staging: str):
        self.staging = staging

    def process(self, receipt: dict):
        key = receipt.get("path") or receipt.get("uri")
        name = hashlib.sha1(f"{receipt['receipt']}|{key}".encode()).hexdigest()[:20]
        fileio.write_bytes(fileio.join(self.staging, "receipts", f"{receipt['receipt']}-{name}.json"),
                           json.dumps(receipt, sort_keys=True).encode())
        yield name
