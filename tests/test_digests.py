"""sha256_hex must equal hashlib's per-record hex digest, row for row."""
import hashlib

import pyarrow as pa

from transforms.digests import sha256_hex


def test_matches_hexdigest_per_record():
    records = [b'{"pub_key":"a"}', b"", "h\u00e9llo \u2603".encode(), bytes(range(256)) * 40, b"\n"]
    got = sha256_hex(records)
    assert got.type == pa.string()
    assert got.to_pylist() == [hashlib.sha256(r).hexdigest() for r in records]


def test_empty_input_gives_empty_column():
    got = sha256_hex([])
    assert len(got) == 0 and got.type == pa.string()


def test_slices_and_filters_keep_the_right_digests():
    records = [str(i).encode() for i in range(1000)]
    got = sha256_hex(records)
    assert got.slice(500, 3).to_pylist() == [hashlib.sha256(str(i).encode()).hexdigest() for i in (500, 501, 502)]
    mask = pa.array([i % 7 == 0 for i in range(1000)])
    assert got.filter(mask).to_pylist() == [hashlib.sha256(str(i).encode()).hexdigest() for i in range(0, 1000, 7)]
