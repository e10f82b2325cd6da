"""Keyed shuffle of Arrow tables through the run's staging area.

Rows are split by a deterministic hash bucket and each staged table is
written once, as one file under `<staging>/shuffle/<name>/` holding one
Arrow IPC stream per bucket, back to back; only ((bucket, salt), (kind,
shard uri, (offset, length))) travels through the runner's GroupByKey.
Memory then holds one bucket at a time instead of the whole input (the
DirectRunner's GroupByKey is in-memory), distributed runners move small
references instead of pickled tables, and a reader fetches its bucket with
one ranged read. Shard names derive from the rows they hold, so a retried
task overwrites its own shards instead of adding duplicates.
"""
from __future__ import annotations

import hashlib

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms import fileio
from transforms.keys import buckets

# Uncompressed: shards live for minutes, mostly in the page cache, and
# compressing them cost more CPU than the I/O it saved.
IPC_OPTIONS: dict = {}

# Per-file provenance strings repeat on every row of a shard (a shard is a
# slice of rows in source order). Run-end encoded they take a few bytes per
# file instead of ~115 bytes per row: 27% of a witness shard, all of it
# copied into and out of the page cache otherwise. Encoding and decoding cost
# well under a millisecond per shard.
RUN_ENCODED = ("source_uri", "source_sha256")


def table_uid(t: pa.Table) -> str:
    """Stable id of a table from the provenance of its first and last rows."""
    if t.num_rows == 0:
        return "empty"
    u, r = t.column("source_uri"), t.column("source_record")
    key = f"{u[0].as_py()}|{r[0].as_py()}|{u[-1].as_py()}|{r[-1].as_py()}|{t.num_rows}"
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def _pack(t: pa.Table) -> pa.Table:
    for name in RUN_ENCODED:
        i = t.schema.get_field_index(name)
        if i >= 0 and t.schema.field(i).type == pa.string():
            t = t.set_column(i, t.schema.field(i).with_type(pa.run_end_encoded(pa.int32(), pa.string())),
                             pc.run_end_encode(t.column(i)))
    return t


def _hoist_constants(t: pa.Table) -> tuple[pa.Table, list[tuple[int, pa.Field, pa.Array]]]:
    """`t` without its RUN_ENCODED columns that hold one value throughout
    (a read chunk's are: it comes from one file), and those as (position,
    field, the value as a one-row array), by position. Rows are permuted
    into bucket order before they are written, and a column of one value
    needs no permuting: it made 28% of the bytes that permutation copied."""
    out = []
    for i, f in enumerate(t.schema):
        if f.name not in RUN_ENCODED or f.type != pa.string() or t.num_rows == 0:
            continue
        col = t.column(i).combine_chunks()
        if col.null_count or len(pc.run_end_encode(col).run_ends) != 1:
            continue
        out.append((i, f, col.slice(0, 1)))
    return t.drop_columns([f.name for _, f, _ in out]), out


def _with_constants(t: pa.Table, consts: list[tuple[int, pa.Field, pa.Array]]) -> pa.Table:
    """Put hoisted columns back, in place, run-end encoded (as _pack would)."""
    n = t.num_rows
    for i, f, value in consts:  # by position: each lands where it was
        ree = pa.RunEndEncodedArray.from_arrays(pa.array([n], pa.int32()), value)
        t = t.add_column(i, f.with_type(ree.type), ree)
    return t


def _unpack(t: pa.Table) -> pa.Table:
    for i, f in enumerate(t.schema):
        if pa.types.is_run_end_encoded(f.type):
            t = t.set_column(i, f.with_type(f.type.value_type), pc.run_end_decode(t.column(i)))
    return t


def _write_ipc_file(sink, schema: pa.Schema, batches: list[pa.RecordBatch]) -> None:
    with pa.ipc.new_file(sink, schema, options=pa.ipc.IpcWriteOptions(**IPC_OPTIONS)) as w:
        for rb in batches:
            w.write_batch(rb)


def write_ipc(uri: str, t: pa.Table) -> None:
    t = _pack(t)
    with fileio.writing(uri) as f:  # streamed to the file: see fileio.writing
        _write_ipc_file(f, t.schema, t.to_batches())


def read_ipc(uri: str) -> pa.Table:
    return _unpack(pa.ipc.open_file(pa.BufferReader(fileio.read_bytes(uri, decompress=False))).read_all())


def write_shard(uri: str, parts: list[pa.Table]) -> list[tuple[int, int]]:
    """Tables of one schema as one file, streamed to it (see fileio.writing):
    part k as a self-contained IPC stream at span k, (offset, length).

    Streams with known spans rather than one IPC file with a batch per part:
    opening an IPC file reads its footer first (on the Arrow I/O thread
    pool, a thread hand-off per read) and only then the batch. Measured on a
    44k-row witness chunk split in 22 buckets: 0.32 ms per bucket read as a
    file batch, 0.13 ms by span; an object store gets one ranged GET."""
    spans = []
    with fileio.writing(uri) as f:
        for p in parts:
            rb = _one_batch(_pack(p))
            start = f.tell()
            with pa.ipc.new_stream(f, rb.schema, options=pa.ipc.IpcWriteOptions(**IPC_OPTIONS)) as w:
                w.write_batch(rb)
            spans.append((start, f.tell() - start))
    return spans


def _one_batch(t: pa.Table) -> pa.RecordBatch:
    t = t.combine_chunks()
    return pa.RecordBatch.from_arrays([c.chunk(0) for c in t.columns], schema=t.schema)


def read_shard(uri: str, span: tuple[int, int]) -> pa.Table:
    """The part of a shard file at `span`, and nothing else of it, in one
    ranged read (see fileio.read_range). Not memory-mapped: mapped shard
    pages stayed resident and counted against the process (10.4M records:
    1.8 GB of file pages on top of 1.0 GB)."""
    offset, length = span
    return _unpack(pa.ipc.open_stream(fileio.read_range(uri, offset, length)).read_all())


def group_key(bucket: int, salts: tuple[int, ...] = ()) -> tuple[int, int]:
    """The GroupByKey key of a bucket: (bucket, salt). The salt only steers
    which partition a runner that hashes keys into a fixed number of
    partitions puts the bucket in (see transforms/beam/spread.py); consumers
    read the bucket from key[0]."""
    return bucket, (salts[bucket] if salts else 0)


class StageByKey(beam.DoFn):
    """table → ((bucket, salt), (kind, shard_uri, span)) for every non-empty bucket.

    The table's rows are written once, as one file holding one IPC stream
    per bucket (in bucket order), and each reference names its stream's
    span, (offset, length).
    One file per staged table, not one per bucket: a file per (table, bucket)
    made the shard count grow with chunks × buckets, both proportional to the
    input (1,892 files for 2M records, 46,761 for 10.4M, now 86 and 429; a
    10.4M-record run took 86–101 s instead of 69–73 s, and on object stores
    each file is a PUT plus a copy, a rename being a copy). Readers fetch
    only their span (see read_shard)."""

    def __init__(self, staging: str, name: str, kind: str, key: str, n_buckets: int, salts: tuple[int, ...] = ()):
        self.staging, self.name, self.kind, self.key, self.n = staging, name, kind, key, n_buckets
        self.salts = tuple(salts)

    def process(self, table: pa.Table):
        if table.num_rows == 0:
            return
        b = buckets(table.column(self.key), self.n)
        # Bucket numbers fit 16 bits, for which numpy's stable sort is a radix
        # sort (int64 would take a timsort, several times slower).
        b = b.astype(np.uint16) if self.n <= 1 << 16 else b
        order = np.argsort(b, kind="stable")
        sb = b[order]
        rest, consts = _hoist_constants(table)
        t = rest.take(pa.array(order))
        cuts = np.flatnonzero(np.diff(sb)) + 1
        starts = np.concatenate([[0], cuts]).tolist()
        ends = np.concatenate([cuts, [len(sb)]]).tolist()
        uri = fileio.join(self.staging, "shuffle", self.name, f"{self.kind}-{table_uid(table)}.arrow")
        spans = write_shard(uri, [_with_constants(t.slice(s, e - s), consts) for s, e in zip(starts, ends)])
        for s, span in zip(starts, spans):
            yield group_key(int(sb[s]), self.salts), (self.kind, uri, span)


def load_group(refs, schemas: dict[str, pa.Schema]) -> dict[str, pa.Table]:
    """Materialise a bucket's shards per kind, in (uri, span) order: deterministic."""
    by_kind: dict[str, set] = {k: set() for k in schemas}
    for kind, uri, span in refs:
        by_kind.setdefault(kind, set()).add((uri, tuple(span)))
    out = {}
    for kind, refs_k in by_kind.items():
        tables = [read_shard(uri, span) for uri, span in sorted(refs_k)]
        out[kind] = pa.concat_tables(tables, promote_options="default") if tables else schemas[kind].empty_table()
    return out
