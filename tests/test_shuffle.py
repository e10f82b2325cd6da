"""The keyed shuffle through staged Arrow IPC shards (transforms/beam/shuffle.py):
every row lands in exactly one span of its key's bucket, comes back unchanged,
a staged table is one file whatever the bucket count, a reader fetches exactly
its bucket's span, and the per-file provenance strings are stored run-end
encoded on disk."""
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from schemas.provenance import SOURCE_FIELDS
from apache_beam.io.localfilesystem import LocalFileSystem

from transforms.beam.shuffle import RUN_ENCODED, StageByKey, load_group, read_ipc, read_shard, write_ipc
from transforms.beam.spread import partition_salts
from transforms.keys import buckets

SCHEMA = pa.schema([pa.field("data", pa.string()), pa.field("signal", pa.int32(), metadata={b"unit": b"ddBm"})]
                   + list(SOURCE_FIELDS))


def _rows(n: int, files: list[str], seed: int = 0) -> pa.Table:
    """n rows in source order: consecutive runs per file, like a read chunk."""
    rng = np.random.default_rng(seed)
    per = np.sort(rng.integers(0, len(files), n))
    return pa.table({
        "data": [f"payload-{rng.integers(0, n // 3 + 1)}" for _ in range(n)],
        "signal": pa.array(rng.integers(-1400, -400, n), pa.int32()),
        "source_uri": [files[i] for i in per],
        "source_record": pa.array(np.arange(1, n + 1), pa.int64()),
        "source_sha256": [f"{i:064x}" for i in per],
        "record_sha256": [f"{k:064x}" for k in rng.integers(0, 2**62, n)],
    }, schema=SCHEMA)


@pytest.mark.parametrize("files", [
    ["file:///in/a.jsonl", "file:///in/b.jsonl", "file:///in/c.jsonl"],
    ["file:///in/a.jsonl"],  # a read chunk: its provenance columns are left out of the bucket sort
])
def test_every_row_lands_once_in_its_bucket_and_comes_back_unchanged(tmp_path, files):
    t = _rows(5000, files)
    n = 7
    out = list(StageByKey(str(tmp_path), "payload", "witness", "data", n).process(t))
    expect = buckets(t.column("data"), n)
    seen = []
    for (bucket, salt), (kind, uri, span) in out:
        assert salt == 0  # no salts given
        assert kind == "witness" and os.path.exists(uri)
        shard = read_shard(uri, span)
        assert shard.schema.equals(SCHEMA, check_metadata=True)  # plain strings again, metadata kept
        assert set(buckets(shard.column("data"), n).tolist()) == {bucket}
        seen.append(shard)
    back = pa.concat_tables(seen)
    assert back.num_rows == t.num_rows
    assert sorted(back.column("source_record").to_pylist()) == t.column("source_record").to_pylist()
    order = pc.sort_indices(back, [("source_record", "ascending")])
    assert back.take(order).equals(t)
    assert {b for (b, _), _ in out} == set(expect.tolist())


@pytest.mark.parametrize("n_buckets", [1, 7, 64])
def test_a_staged_table_is_one_file_with_a_stream_per_bucket(tmp_path, n_buckets):
    """The shard count grows with the tables staged, not with tables × buckets;
    the buckets' spans tile the file, each one whole IPC stream of one batch."""
    t = _rows(3000, ["file:///in/a.jsonl"], seed=4)
    out = list(StageByKey(str(tmp_path), "payload", "witness", "data", n_buckets).process(t))
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 1 and {uri for _, (_, uri, _) in out} == {str(files[0])}
    assert len(out) == len(set(buckets(t.column("data"), n_buckets).tolist()))
    spans = sorted(span for _, (_, _, span) in out)
    assert spans[0][0] == 0 and sum(length for _, length in spans) == files[0].stat().st_size
    assert all(a + n == b for (a, n), (b, _) in zip(spans, spans[1:]))
    data = files[0].read_bytes()
    for offset, length in spans:
        assert len(list(pa.ipc.open_stream(pa.py_buffer(data[offset:offset + length])))) == 1


class _CountingFileSystem(LocalFileSystem):
    """A remote-looking scheme over local files that counts the bytes read:
    stands in for gs:// or s3:// to exercise ranged reads."""
    read_bytes = 0

    @classmethod
    def scheme(cls):
        return "countingtest"

    def open(self, path, mime_type="application/octet-stream", compression_type=None):
        f = super().open(path[len("countingtest://"):], mime_type, compression_type)
        read = f.read

        def counted(n=-1):
            data = read(n)
            _CountingFileSystem.read_bytes += len(data)
            return data
        f.read = counted
        return f


def test_a_remote_shard_is_read_by_ranges_only_for_its_bucket(tmp_path):
    t = _rows(20000, ["file:///in/a.jsonl"], seed=6)
    out = list(StageByKey(str(tmp_path), "payload", "witness", "data", 16).process(t))
    for (bucket, _), (_, local, span) in out[:3]:
        _CountingFileSystem.read_bytes = 0
        got = read_shard(f"countingtest://{local}", span)
        assert got.equals(read_shard(local, span))
        assert set(buckets(got.column("data"), 16).tolist()) == {bucket}
        assert _CountingFileSystem.read_bytes == span[1]  # its span, and not a byte of the rest


def test_a_truncated_shard_fails_loudly_instead_of_reading_short(tmp_path):
    t = _rows(2000, ["file:///in/a.jsonl"], seed=7)
    out = list(StageByKey(str(tmp_path), "payload", "witness", "data", 4).process(t))
    (_, (_, uri, _)) = out[0]
    last = max(span for _, (_, _, span) in out)
    with open(uri, "r+b") as f:
        f.truncate(last[0] + last[1] // 2)
    for path in (uri, f"countingtest://{uri}"):
        with pytest.raises(OSError, match="expected"):
            read_shard(path, last)


def test_load_group_rebuilds_a_bucket_from_its_shards(tmp_path):
    a = _rows(800, ["file:///in/a.jsonl"], seed=1)
    b = _rows(600, ["file:///in/b.jsonl", "file:///in/d.jsonl"], seed=2)
    refs = []
    for t in (a, b):
        refs += [ref for (bucket, _), ref in StageByKey(str(tmp_path), "payload", "witness", "data", 3).process(t)
                 if bucket == 1]
    g = load_group(refs, {"witness": SCHEMA, "vbeacon": SCHEMA})
    assert g["vbeacon"].num_rows == 0 and g["vbeacon"].schema.equals(SCHEMA)
    want = pa.concat_tables([t.filter(pa.array(buckets(t.column("data"), 3) == 1)) for t in (a, b)])
    got = g["witness"]
    key = [("source_uri", "ascending"), ("source_record", "ascending")]
    assert got.num_rows == want.num_rows
    assert got.take(pc.sort_indices(got, key)).equals(want.take(pc.sort_indices(want, key)))


def test_provenance_strings_are_run_end_encoded_on_disk(tmp_path):
    t = _rows(20000, ["file:///data/witnesses-0001.jsonl"])
    uri = str(tmp_path / "s.arrow")
    write_ipc(uri, t)
    raw = pa.ipc.open_file(pa.memory_map(uri)).read_all()
    for name in RUN_ENCODED:
        assert pa.types.is_run_end_encoded(raw.schema.field(name).type), name
        assert len(raw.column(name).chunk(0).values) == 1  # one run: one file
    out = list(StageByKey(str(tmp_path / "staged"), "payload", "witness", "data", 5).process(t))
    shard = open(out[0][1][1], "rb").read()
    for _, (_, _, (offset, length)) in out:  # shuffle shards too, every bucket's stream
        rb = pa.ipc.open_stream(pa.py_buffer(shard[offset:offset + length])).read_next_batch()
        for name in RUN_ENCODED:
            assert pa.types.is_run_end_encoded(rb.schema.field(name).type) and len(rb.column(name).values) == 1
    sink = pa.BufferOutputStream()  # the same table written as is
    with pa.ipc.new_file(sink, t.schema) as w:
        w.write_table(t)
    per_row = sum(len(v) for v in ("file:///data/witnesses-0001.jsonl", "0" * 64))
    assert os.path.getsize(uri) < sink.getvalue().size - 0.9 * per_row * t.num_rows
    assert read_ipc(uri).equals(t, check_metadata=True)


@pytest.mark.parametrize("nulls", [False, True])
def test_provenance_that_varies_per_row_round_trips(tmp_path, nulls):
    """Verified beacons mix many source files in one shard, unordered."""
    rng = np.random.default_rng(3)
    t = _rows(3000, [f"file:///in/b{i}.jsonl.gz" for i in range(40)])
    t = t.take(pa.array(rng.permutation(t.num_rows)))
    if nulls:
        i = t.schema.get_field_index("source_sha256")
        vals = t.column(i).to_pylist()
        t = t.set_column(i, t.schema.field(i), pa.array([None if k % 5 == 0 else v for k, v in enumerate(vals)],
                                                        pa.string()))
    write_ipc(str(tmp_path / "v.arrow"), t)
    assert read_ipc(str(tmp_path / "v.arrow")).equals(t, check_metadata=True)


def test_salted_keys_carry_their_bucket_and_salt(tmp_path):
    t = _rows(3000, ["file:///in/a.jsonl"], seed=5)
    salts = (5, 0, 9, 2)
    out = list(StageByKey(str(tmp_path), "payload", "witness", "data", 4, salts).process(t))
    assert len(out) == 4
    for (bucket, salt), (_, uri, span) in out:
        assert salt == salts[bucket]
        assert set(buckets(read_shard(uri, span).column("data"), 4).tolist()) == {bucket}


@pytest.mark.parametrize("n_buckets, n_partitions", [(22, 16), (32, 16), (24, 8), (5, 12)])
def test_partition_salts_spread_buckets_evenly_over_dask_groupby_partitions(n_buckets, n_partitions):
    """The partition a key lands in is computed the way dask.bag's task-based
    groupby does (tokenize hash mod partitions), checked against a real Bag.groupby."""
    import dask
    import dask.bag as db
    from collections import Counter

    salts = partition_salts(n_buckets, n_partitions)
    keys = [(i, salts[i]) for i in range(n_buckets)]
    # n_partitions copies of every key: from_sequence then makes exactly n_partitions partitions
    bag = db.from_sequence([(k, i) for i, k in enumerate(keys)] * n_partitions, npartitions=n_partitions)
    grouped = bag.groupby(lambda kv: kv[0], shuffle="tasks")
    assert grouped.npartitions == n_partitions
    with dask.config.set(scheduler="sync"):
        parts = [[k for k, _ in part] for part in dask.compute(*grouped.to_delayed())]
    where = {k: p for p, ks in enumerate(parts) for k in ks}
    assert sorted(where) == sorted(keys)
    assert all(where[(i, salts[i])] == i % n_partitions for i in range(n_buckets))
    sizes = Counter(where.values())
    assert max(sizes.values()) - min(sizes.values()) <= 1


def test_partition_salts_skip_when_buckets_outnumber_partitions_fourfold():
    assert partition_salts(65, 16) == ()
    assert partition_salts(8, 1) == ()
    assert len(partition_salts(64, 16)) == 64
