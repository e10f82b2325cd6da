"""Reading .gz inputs (transforms.fileio, ISA-L inflate): every member of a
multi-member file, output bounded per step, truncation and garbage reported."""
import gzip
import os

import pytest

from transforms import fileio


def _read(path, size=1 << 16):
    return list(fileio._iter_gunzip(str(path), size))


def test_every_member_of_a_multi_member_file_is_read_in_order(tmp_path):
    parts = [os.urandom(300_000).hex().encode(), b"second member\n", b"", b"x" * 5_000_000]
    p = tmp_path / "m.jsonl.gz"
    p.write_bytes(b"".join(gzip.compress(x) for x in parts))
    assert b"".join(_read(p)) == b"".join(parts)
    assert b"".join(fileio.iter_bytes(str(p), size=1 << 20)) == b"".join(parts)


def test_output_is_bounded_per_step_for_a_compression_bomb(tmp_path):
    p = tmp_path / "bomb.jsonl.gz"
    p.write_bytes(gzip.compress(b"\0" * (64 << 20), compresslevel=9))  # 64 MiB from ~64 KiB
    size, total = 1 << 20, 0
    for piece in fileio._iter_gunzip(str(p), size):
        assert len(piece) <= size
        total += len(piece)
    assert total == 64 << 20


def test_truncated_file_yields_what_it_holds_then_fails(tmp_path):
    data = os.urandom(400_000).hex().encode()
    z = gzip.compress(data)
    p = tmp_path / "cut.jsonl.gz"
    p.write_bytes(z[: len(z) // 2])
    got = []
    with pytest.raises(EOFError, match="truncated gzip"):
        for piece in fileio._iter_gunzip(str(p), 1 << 16):
            got.append(piece)
    assert got and data.startswith(b"".join(got))


def test_plain_bytes_named_gz_are_not_a_gzip_stream(tmp_path):
    p = tmp_path / "fake.jsonl.gz"
    p.write_bytes(b'{"a": 1}\n' * 100)
    with pytest.raises(OSError, match="not a valid gzip stream"):
        _read(p)


@pytest.mark.parametrize("read_size", [997, 1 << 16, fileio.READ_SIZE])
def test_random_members_read_sizes_and_step_bounds_give_the_exact_bytes(tmp_path, monkeypatch, read_size):
    """Member ends falling anywhere: inside a file read, on a read boundary,
    right when a step's output bound is reached. Every byte once, in order."""
    import random
    rng = random.Random(read_size)
    monkeypatch.setattr(fileio, "READ_SIZE", read_size)
    for trial in range(12):
        size = rng.choice([1 << 10, 1 << 12, 4096 * 3, 1 << 16])
        parts = []
        for _ in range(rng.randint(1, 6)):
            n = rng.choice([0, 1, size, size * rng.randint(1, 40), rng.randint(1, 300_000)])
            parts.append(rng.randbytes(n // 2).hex().encode() if rng.random() < 0.5 else bytes([rng.randint(0, 255)]) * n)
        p = tmp_path / f"r{trial}.jsonl.gz"
        p.write_bytes(b"".join(gzip.compress(x, compresslevel=rng.choice([1, 6, 9])) for x in parts))
        got = list(fileio._iter_gunzip(str(p), size))
        assert all(len(x) <= size for x in got)
        assert b"".join(got) == b"".join(parts), (trial, size, [len(x) for x in parts])
