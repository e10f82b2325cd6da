"""sha256_hex and sha256_hex_arrow must equal hashlib's per-record hex digest, row for row;
BlockLines must give exactly the lines bytes.split gives."""
import hashlib

import pyarrow as pa
import pytest

from transforms.digests import sha256_hex, sha256_hex_arrow
from transforms.parse import BlockLines


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


def test_arrow_column_digests_equal_hashlib_row_for_row():
    # Lengths around SHA-256's 55/56/64-byte padding edges, empty, non-ASCII, multi-block.
    records = [bytes(range(n % 256)) * (1 + n // 256) for n in (0, 1, 55, 56, 63, 64, 65, 119, 120, 1000)]
    records += ["h\u00e9llo \u2603".encode(), bytes(range(256)) * 40]
    for typ in (pa.binary(), pa.large_binary()):
        got = sha256_hex_arrow(pa.array(records, typ))
        assert got.type == pa.string()
        assert got.to_pylist() == [hashlib.sha256(r).hexdigest() for r in records]
    assert len(sha256_hex_arrow(pa.array([], pa.binary()))) == 0


def test_arrow_column_with_a_null_is_refused_not_hashed_as_something():
    with pytest.raises(ValueError):
        sha256_hex_arrow(pa.array([b"a", None], pa.binary()))


@pytest.mark.parametrize("block", [
    b'{"a":1}',
    b'{"a":1}\n{"b":2}\n{"c":"\xc3\xa9"}',
    b'x\n\ny',             # an empty line
    b'\n{"a":1}\n',        # leading and trailing newline
    b"\n",
])
def test_block_lines_are_exactly_the_lines_bytes_split_gives(block):
    view = BlockLines(block)
    want = block.split(b"\n")
    assert len(view) == len(want)
    assert list(view) == want
    assert [view[i] for i in range(len(view))] == want
    assert view.arrow().to_pylist() == want
    assert view.lengths.tolist() == [len(x) for x in want]
    assert view.longest() == max(map(len, want))


def test_record_hashes_of_a_chunk_with_a_bad_line_are_those_of_each_raw_line(tmp_path):
    """The fast path hashes a chunk's lines as one column; when one line is
    malformed the others must still carry the sha256 of their own raw bytes."""
    from transforms.parse import read_file
    from transforms.witness.source import WITNESS

    good = [('{"pub_key":"k%d","data":"AAEC","timestamp":1763600000000000000,"signal":-900,"snr":55,'
             '"frequency":868100000,"received_timestamp":1763600000100}' % i).encode() for i in range(5)]
    lines = good[:2] + [b'{"pub_key": not json'] + good[2:]
    f = tmp_path / "w.jsonl"
    f.write_bytes(b"\n".join(lines) + b"\n")
    out = dict((k, v) for k, v in read_file(str(f), WITNESS) if k in ("records", "quarantine"))
    rec = out["records"]
    assert rec.column("source_record").to_pylist() == [1, 2, 4, 5, 6]
    assert rec.column("record_sha256").to_pylist() == [hashlib.sha256(r).hexdigest() for r in good]
    q = out["quarantine"]
    assert q.column("source_record").to_pylist() == [3]
    assert q.column("record_sha256").to_pylist() == [hashlib.sha256(lines[2]).hexdigest()]
