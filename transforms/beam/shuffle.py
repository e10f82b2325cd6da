"""Keyed shuffle of Arrow tables through the run's staging area.

Rows are split by a deterministic hash bucket and each slice is written as an
Arrow IPC shard under `<staging>/shuffle/<name>/<bucket>/`; only
((bucket, salt), (kind, shard uri)) travels through the runner's GroupByKey. Memory
then holds one bucket at a time instead of the whole input (the DirectRunner's
GroupByKey is in-memory), and distributed runners move small references
instead of pickled tables. Shard names derive from the rows they hold, so a
retried task overwrites its own shards instead of adding duplicates.
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


def _unpack(t: pa.Table) -> pa.Table:
    for i, f in enumerate(t.schema):
        if pa.types.is_run_end_encoded(f.type):
            t = t.set_column(i, f.with_type(f.type.value_type), pc.run_end_decode(t.column(i)))
    return t


def ipc_bytes(t: pa.Table) -> pa.Buffer:
    """The table as an Arrow IPC file, written into a buffer of its exact size
    (a growing BufferOutputStream reallocates and copies as it doubles)."""
    opts = pa.ipc.IpcWriteOptions(**IPC_OPTIONS)
    if opts.compression:  # sizing would compress twice
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, t.schema, options=opts) as w:
            w.write_table(t)
        return sink.getvalue()
    mock = pa.MockOutputStream()
    with pa.ipc.new_file(mock, t.schema, options=opts) as w:
        w.write_table(t)
    buf = pa.allocate_buffer(mock.size())
    with pa.ipc.new_file(pa.FixedSizeBufferWriter(buf), t.schema, options=opts) as w:
        w.write_table(t)
    return buf


def write_ipc(uri: str, t: pa.Table) -> None:
    fileio.write_bytes(uri, ipc_bytes(_pack(t)))  # a pa.Buffer: written without a copy


def read_ipc(uri: str) -> pa.Table:
    return _unpack(pa.ipc.open_file(pa.BufferReader(fileio.read_bytes(uri, decompress=False))).read_all())


def group_key(bucket: int, salts: tuple[int, ...] = ()) -> tuple[int, int]:
    """The GroupByKey key of a bucket: (bucket, salt). The salt only steers
    which partition a runner that hashes keys into a fixed number of
    partitions puts the bucket in (see transforms/beam/spread.py); consumers
    read the bucket from key[0]."""
    return bucket, (salts[bucket] if salts else 0)


class StageByKey(beam.DoFn):
    """table → ((bucket, salt), (kind, shard_uri)) for every non-empty bucket slice."""

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
        t = table.take(pa.array(order))
        cuts = np.flatnonzero(np.diff(sb)) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [len(sb)]])
        uid = table_uid(table)
        for s, e in zip(starts.tolist(), ends.tolist()):
            bucket = int(sb[s])
            uri = fileio.join(self.staging, "shuffle", self.name, f"{bucket:05d}", f"{self.kind}-{uid}.arrow")
            write_ipc(uri, t.slice(s, e - s))
            yield group_key(bucket, self.salts), (self.kind, uri)


def load_group(refs, schemas: dict[str, pa.Schema]) -> dict[str, pa.Table]:
    """Materialise a bucket's shards per kind (sorted by uri: deterministic)."""
    by_kind: dict[str, list[str]] = {k: [] for k in schemas}
    for kind, uri in refs:
        by_kind.setdefault(kind, []).append(uri)
    out = {}
    for kind, uris in by_kind.items():
        tables = [read_ipc(u) for u in sorted(set(uris))]
        out[kind] = pa.concat_tables(tables, promote_options="default") if tables else schemas[kind].empty_table()
    return out
