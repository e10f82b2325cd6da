"""Outputs and shards are streamed to their files (fileio.writing) instead of
built in memory first: a file still appears only whole, a failure half-way
leaves neither it nor a temporary file, and the bytes and their receipt's
sha256 are those the in-memory writer produced."""
import hashlib
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.io.localfilesystem import LocalFileSystem

from transforms import fileio
from transforms.beam.shuffle import read_shard, write_shard
from transforms.beam.write import parquet_bytes, write_parquet


def _table(n: int = 20_000) -> pa.Table:
    rng = np.random.default_rng(7)
    return pa.table({"data": [f"p-{k}" for k in rng.integers(0, 10**9, n)],
                     "signal": pa.array(rng.integers(-1400, -400, n), pa.int32()),
                     "source_uri": ["file:///in/a.jsonl"] * n})


def test_a_write_failing_half_way_leaves_the_previous_file_and_no_temporary(tmp_path):
    uri = str(tmp_path / "d" / "x.bin")
    fileio.write_bytes(uri, b"previous")
    with pytest.raises(RuntimeError, match="half-way"):
        with fileio.writing(uri) as f:
            f.write(b"new bytes, " * 1000)
            assert open(uri, "rb").read() == b"previous"  # not visible before the end
            raise RuntimeError("failed half-way")
    assert open(uri, "rb").read() == b"previous"
    assert os.listdir(tmp_path / "d") == ["x.bin"]


def test_streamed_parquet_is_byte_identical_to_in_memory_and_its_digest_is_the_files(tmp_path):
    t = _table()
    uri = str(tmp_path / "part.parquet")
    size, sha = write_parquet(uri, t)
    data = open(uri, "rb").read()
    assert data == parquet_bytes(t).to_pybytes()
    assert (size, sha) == (len(data), hashlib.sha256(data).hexdigest())
    assert pq.read_table(uri).equals(t)
    assert os.listdir(tmp_path) == ["part.parquet"]


def test_positions_count_bytes_not_yet_written_out(tmp_path):
    """Local writes are gathered in a buffer (fileio.WRITE_BUFFER) before they
    reach the file; `tell()`, which shard spans are taken from, still counts
    every byte handed over, across buffer boundaries."""
    uri = str(tmp_path / "many.bin")
    pieces = [bytes([k % 251]) * (1 + k % 97) for k in range(30_000)]  # > 1 MiB in small writes
    told = []
    with fileio.writing(uri) as f:
        for p in pieces:
            told.append(f.tell())
            f.write(p)
        told.append(f.tell())
    data = open(uri, "rb").read()
    assert sum(map(len, pieces)) > fileio.WRITE_BUFFER
    assert data == b"".join(pieces)
    assert told == [0] + np.cumsum([len(p) for p in pieces]).tolist()


def test_size_and_sha256_reads_a_file_longer_than_its_buffer(tmp_path):
    data = os.urandom(3 * (1 << 20) + 12345)
    p = tmp_path / "big.bin"
    p.write_bytes(data)
    assert fileio.size_and_sha256(str(p)) == (len(data), hashlib.sha256(data).hexdigest())


def test_a_streamed_shard_gives_back_each_part_as_its_batch(tmp_path):
    t = _table()
    parts = [t.slice(0, 5), t.slice(5, 12_000), t.slice(12_005)]
    uri = str(tmp_path / "shuffle" / "s.arrow")
    spans = write_shard(uri, parts)
    for span, p in zip(spans, parts):
        assert read_shard(uri, span).equals(p)
    assert os.listdir(tmp_path / "shuffle") == ["s.arrow"]


class _RemoteLikeFileSystem(LocalFileSystem):
    """A scheme that is not a local path (as gs:// or s3:// are not), over
    local files: sends fileio.writing down its object-store branch, where
    Arrow writes through a Python file object from Beam's FileSystems."""

    @classmethod
    def scheme(cls):
        return "remotelike"

    @staticmethod
    def _local(path: str) -> str:
        return path[len("remotelike://"):] if path.startswith("remotelike://") else path

    def create(self, path, *a, **k):
        return super().create(self._local(path), *a, **k)

    def open(self, path, *a, **k):
        return super().open(self._local(path), *a, **k)

    def exists(self, path):
        return super().exists(self._local(path))

    def delete(self, paths):
        return super().delete([self._local(p) for p in paths])

    def rename(self, sources, destinations):
        return super().rename([self._local(p) for p in sources], [self._local(p) for p in destinations])


def test_the_object_store_branch_writes_whole_files_and_cleans_up_after_a_failure(tmp_path):
    t = _table(5000)
    local = tmp_path / "shuffle" / "s.arrow"
    local.parent.mkdir()
    remote = f"remotelike://{local}"
    spans = write_shard(remote, [t.slice(0, 100), t.slice(100)])
    assert read_shard(str(local), spans[1]).equals(t.slice(100))
    assert sum(length for _, length in spans) == local.stat().st_size
    size, sha = write_parquet(f"remotelike://{tmp_path}/p.parquet", t)
    data = (tmp_path / "p.parquet").read_bytes()
    assert data == parquet_bytes(t).to_pybytes() and (size, sha) == (len(data), hashlib.sha256(data).hexdigest())
    with pytest.raises(RuntimeError):
        with fileio.writing(f"remotelike://{tmp_path}/shuffle/t.arrow") as f:
            f.write(b"partial")
            raise RuntimeError("worker lost")
    assert sorted(p.name for p in (tmp_path / "shuffle").iterdir()) == ["s.arrow"]
