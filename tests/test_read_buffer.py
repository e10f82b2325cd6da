"""A JSON Lines file is read into one buffer that a worker thread reuses from
file to file (transforms.parse.ReadBuffer): what a read gives must not depend
on what the buffer held before, on how the file falls into chunks, on other
threads reading at the same time, or on views of the buffer left alive."""
import bz2
import gzip
import hashlib
import json
import threading

import pyarrow as pa

from transforms import parse
from transforms.beam.read import ReadFiles
from transforms.witness.source import WITNESS


def _line(i: int, pad: int = 0) -> bytes:
    return json.dumps({"pub_key": f"11key{i:06d}", "data": "AAAA", "timestamp": 1_700_000_000_000_000_000 + i,
                       "signal": -1000 - i % 300, "snr": 55, "frequency": 867_100_000, "datarate": "SF9BW125",
                       "signature": "c2ln" + "A" * pad, "received_timestamp": 1_700_000_000_000 + i}).encode()


def _read(uri, buffer=None, chunk_bytes=1 << 20):
    """(source_record, record_sha256) of the records, (line, raw, code) of the quarantine rows."""
    recs, quar = [], []
    for kind, x in parse.read_file(str(uri), WITNESS, chunk_bytes=chunk_bytes, buffer=buffer):
        if kind == "records":
            recs += zip(x.column("source_record").to_pylist(), x.column("record_sha256").to_pylist())
        elif kind == "quarantine":
            quar += zip(x.column("source_record").to_pylist(), x.column("raw_record").to_pylist(),
                        x.column("error_code").to_pylist())
    return recs, quar


def _expected(lines: list[bytes]):
    return [(i + 1, hashlib.sha256(l).hexdigest()) for i, l in enumerate(lines)]


def test_a_used_buffer_reads_a_file_as_a_fresh_one_does(tmp_path):
    # The first file fills the buffer with long lines and a byte-order mark;
    # the second has shorter lines, with ends and starts of lines on every
    # chunk boundary of a 1000-byte step.
    first = tmp_path / "first.jsonl"
    first.write_bytes(b"\xef\xbb\xbf" + b"\n".join(_line(i, pad=900) for i in range(50)) + b"\n")
    lines = [_line(i, pad=i % 37) for i in range(400)]
    second = tmp_path / "second.jsonl"
    second.write_bytes(b"\n".join(lines))  # no newline at the end: the last line is the carry
    rb = parse.ReadBuffer()
    assert _read(first, rb, chunk_bytes=1000)[0] == _expected(
        [_line(i, pad=900) for i in range(50)])
    used = _read(second, rb, chunk_bytes=1000)
    assert used == (_expected(lines), [])
    assert used == _read(second, parse.ReadBuffer(), chunk_bytes=1000)


def test_a_file_shorter_than_a_byte_order_mark_is_not_read_as_one(tmp_path):
    # After a file that starts with a BOM the buffer still starts with one.
    # A file cut off after the first 2 bytes of a BOM overwrites only those
    # 2: it must be read as its own 2 bytes (a line that is not UTF-8), not
    # as a BOM completed by a stale third byte.
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + _line(1) + b"\n")
    tiny = tmp_path / "tiny.jsonl"
    tiny.write_bytes(b"\xef\xbb")
    rb = parse.ReadBuffer()
    assert _read(bom, rb)[0] == _expected([_line(1)])
    recs, quar = _read(tiny, rb)
    assert recs == [] and quar == [(1, b"\xef\xbb", "bad_encoding")]


def test_compressed_inputs_read_through_the_buffer_give_the_plain_file_rows(tmp_path):
    lines = [_line(i, pad=i % 50) for i in range(300)]
    data = b"\n".join(lines) + b"\n"
    for name, packed in (("w.jsonl.gz", gzip.compress(data)), ("w.jsonl.bz2", bz2.compress(data))):
        p = tmp_path / name
        p.write_bytes(packed)
        assert _read(p, parse.ReadBuffer(), chunk_bytes=777) == (_expected(lines), [])


def test_views_of_the_buffer_left_alive_do_not_stop_the_next_read(tmp_path):
    # A view still alive (as in a reference cycle not yet collected) keeps a
    # bytearray from growing; the buffer moves to a new one instead.
    small = tmp_path / "small.jsonl"
    small.write_bytes(_line(0) + b"\n")
    lines = [_line(i, pad=200) for i in range(8000)]  # 3.3 MB: the second 1 MiB chunk needs more room
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"\n".join(lines) + b"\n")
    rb = parse.ReadBuffer()
    _read(small, rb)
    held = memoryview(rb.buf)
    assert _read(big, rb, chunk_bytes=1 << 20) == (_expected(lines), [])
    assert len(rb.buf) > len(held)
    held.release()


def test_threads_sharing_one_reader_each_read_their_own_file(tmp_path):
    # The DirectRunner may call one DoFn instance from several threads: each
    # needs its own buffer, or one thread's read overwrites another's chunk.
    files, want = [], {}
    for k in range(2):
        lines = [_line(1000 * k + i, pad=(7 * i + k) % 90) for i in range(3000)]
        p = tmp_path / f"w{k}.jsonl"
        p.write_bytes(b"\n".join(lines) + b"\n")
        files.append(str(p))
        want[str(p)] = _expected(lines)
    reader = ReadFiles({"witness": WITNESS}, chunk_bytes=4096)
    got: dict[str, list] = {f: [] for f in files}
    errors = []

    def run(uri):
        try:
            for _ in range(5):
                rows = []
                for tag, t in reader.process(("witness", uri)):
                    if tag == "witness":
                        rows += zip(t.column("source_record").to_pylist(), t.column("record_sha256").to_pylist())
                got[uri].append(rows)
        except Exception as e:  # reported below, with the thread's file
            errors.append((uri, e))

    threads = [threading.Thread(target=run, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for f in files:
        assert got[f] == [want[f]] * 5


def test_block_lines_of_a_view_hash_like_bytes_and_give_bytes():
    block = b'{"a":1}\n\n{"b":"' + b"x" * 40 + b'"}\nshort\n{"c":"\xc3\xa9"}'
    backing = bytearray(b"junk" + block + b"tail")
    view = parse.BlockLines(memoryview(backing)[4:4 + len(block)])
    want = block.split(b"\n")
    assert [view[i] for i in range(len(view))] == want and all(type(view[i]) is bytes for i in range(len(view)))
    arr = view.arrow()
    assert arr.type == pa.binary_view() and arr.to_pylist() == want
    arr.validate(full=True)
