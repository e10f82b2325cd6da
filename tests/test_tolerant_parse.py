"""A JSON Lines chunk with bad lines: every good line is parsed, in order, with
its line number and record hash, and every bad line is quarantined with the
reason a parse of that line alone gives, wherever the bad lines sit (and a
line of only spaces, which pyarrow skips without a row, cannot shift the
line numbers of the rows after it, and a `null` line, which pyarrow reads as
a row of nulls or crashes on, is a line that is not an object); finding
them costs about one re-parse of a span per bad line, not a parse per line;
and a wrong row number in pyarrow's error costs time, never a record."""
import hashlib
import json
import math
import os
import random
import subprocess
import sys

import pyarrow as pa
import pytest

from transforms import parse
from transforms.witness.source import WITNESS

BAD = {
    b'{"pub_key": "k", "data": ': "malformed_json",                       # cut off
    b"not json at all": "malformed_json",
    b"[1, 2, 3]": "not_an_object",
    b'"just a string"': "not_an_object",
    b'{"pub_key": 5, "data": "AAAA"}': "wrong_type",                       # number for a string
    b'{"pub_key": "k", "timestamp": 99999999999999999999999}': "wrong_type",  # no row in pyarrow's error
    b'{"pub_key": "k"}{"pub_key": "j"}': "malformed_json",               # two objects on one line
    b'{"pub_key": "\xff\xfe", "data": "AAAA"}': "bad_encoding",           # invalid UTF-8
    b"null": "not_an_object",                       # pyarrow: a row of nulls, or a crash if first
    b"  null": "not_an_object",
    b"nullify": "malformed_json",
}


# Lines of only whitespace are blank lines, as empty ones are: neither records
# nor quarantined, but counted, and the lines after them keep their numbers.
BLANK = [b"   ", b"\t"]


def _good(i: int) -> bytes:
    return json.dumps({"pub_key": f"11key{i:06d}", "data": "AAAA", "timestamp": 1_700_000_000_000_000_000 + i,
                       "signal": -1000 - i % 300, "snr": 55, "frequency": 867_100_000,
                       "datarate": "SF9BW125", "signature": "c2ln", "received_timestamp": 1_700_000_000_000 + i
                       }).encode()


def _write(tmp_path, lines: list[bytes]):
    p = tmp_path / "w.jsonl"
    p.write_bytes(b"\n".join(lines) + b"\n")
    return str(p)


def _read(uri, chunk_bytes=1 << 20):
    """(records, quarantine rows by line, FileStats) of one file."""
    recs, quar, stats = [], [], None
    for kind, x in parse.read_file(uri, WITNESS, chunk_bytes=chunk_bytes):
        if kind == "records":
            recs.append(x)
        elif kind == "quarantine":
            quar.append(x)
        else:
            stats = x
    recs = pa.concat_tables(recs) if recs else None
    quar = pa.concat_tables(quar).sort_by("source_record") if quar else None
    return recs, quar, stats


def _dirty_file(tmp_path, n_good=12_000, positions=None, seed=3):
    rng = random.Random(seed)
    lines = [_good(i) for i in range(n_good)]
    bad_lines = list(BAD) + BLANK
    positions = positions if positions is not None else sorted(rng.sample(range(n_good), 40))
    for k, pos in enumerate(sorted(positions, reverse=True)):
        lines.insert(pos, bad_lines[k % len(bad_lines)])
    return _write(tmp_path, lines), lines


def _check(lines, recs, quar, stats):
    want_good = [(i + 1, l) for i, l in enumerate(lines) if l not in BAD and l not in BLANK]
    want_bad = [(i + 1, l, BAD[l]) for i, l in enumerate(lines) if l in BAD]
    assert recs.num_rows == len(want_good)
    assert recs.column("source_record").to_pylist() == [n for n, _ in want_good]
    assert recs.column("record_sha256").to_pylist() == [hashlib.sha256(l).hexdigest() for _, l in want_good]
    assert recs.column("pub_key").to_pylist() == [json.loads(l)["pub_key"] for _, l in want_good]
    assert quar.num_rows == len(want_bad)
    assert quar.column("source_record").to_pylist() == [n for n, _, _ in want_bad]
    assert quar.column("raw_record").to_pylist() == [l for _, l, _ in want_bad]
    assert quar.column("error_code").to_pylist() == [c for _, _, c in want_bad]
    assert stats.blank_lines == sum(l in BLANK for l in lines)
    assert stats.records == len(want_good) + len(want_bad) == stats.parsed + stats.quarantined


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_line_ends_good_or_quarantined_with_its_own_reason(tmp_path, seed):
    uri, lines = _dirty_file(tmp_path, seed=seed)
    _check(lines, *_read(uri))


def test_bad_lines_at_the_edges_and_side_by_side(tmp_path):
    # First line, last line, a run of adjacent bad lines, and lines at the
    # boundaries of the 16 spans a chunk is cut into.
    n = 8_000
    positions = [0, 1, 2, 500, 501, 502, 503, n // 16, n // 8, n - 1, n]
    uri, lines = _dirty_file(tmp_path, n_good=n, positions=positions)
    _check(lines, *_read(uri))


def test_a_bad_line_costs_about_one_span_reparse_not_a_parse_per_line(tmp_path, monkeypatch):
    calls = []
    real = parse._read_block

    def counting(buf, nlines, *a, **k):
        calls.append(nlines)
        return real(buf, nlines, *a, **k)

    monkeypatch.setattr(parse, "_read_block", counting)
    uri, lines = _dirty_file(tmp_path, n_good=20_000, positions=list(range(500, 20_000, 2_000)))
    recs, quar, stats = _read(uri, chunk_bytes=64 << 20)   # one chunk
    _check(lines, recs, quar, stats)
    n_bad = quar.num_rows
    # One try of the whole chunk, 16 spans, then per bad line a split of its
    # span in three; the line holding two objects (its error names no line)
    # is found by halving its span.
    span = -(-(len(lines) - len(BLANK)) // 16)
    assert len(calls) <= 1 + 16 + 3 * n_bad + 2 * math.ceil(math.log2(span))
    # Most lines are parsed at most about twice (the whole try and their span).
    assert sum(calls) < 3 * len(lines)


def test_a_wrong_row_number_costs_time_never_a_record(tmp_path, monkeypatch):
    uri, lines = _dirty_file(tmp_path, n_good=6_000, seed=9)
    right = _read(uri)
    # pyarrow's row number is a hint: make it point at the wrong line.
    monkeypatch.setattr(parse, "_error_row", lambda err, view, a, b: a if b - a > 1 else None)
    wrong = _read(uri)
    _check(lines, *wrong)
    assert wrong[0].equals(right[0]) and wrong[1].equals(right[1])


def test_a_blank_line_and_a_two_object_line_cannot_balance_into_shifted_line_numbers(tmp_path):
    # pyarrow makes no row of a line of spaces and two rows of a line holding
    # two objects: in one chunk the row count matches the line count, and
    # trusting it would give every row between them its neighbour's line
    # number, raw text and hash (what the fast path did before).
    lines = [_good(i) for i in range(40)]
    lines.insert(10, b"   ")
    lines.insert(20, b'{"pub_key": "k"}{"pub_key": "j"}')
    uri = _write(tmp_path, lines)
    _check(lines, *_read(uri))


def test_a_null_line_is_not_an_object_not_a_record_missing_its_fields(tmp_path):
    # pyarrow reads a `null` line inside a block as a row of nulls, which
    # then looked like a record missing every required field.
    lines = [_good(i) for i in range(30)]
    lines.insert(7, b"null")
    uri = _write(tmp_path, lines)
    recs, quar, stats = _read(uri)
    assert quar.column("source_record").to_pylist() == [8]
    assert quar.column("error_code").to_pylist() == ["not_an_object"]
    assert quar.column("error").to_pylist() == ["expected a JSON object, got NoneType"]
    _check(lines, recs, quar, stats)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READ_IN_CHILD = """
import json, sys
from transforms import parse
from transforms.witness.source import WITNESS
out = {"records": [], "quarantine": []}
for kind, x in parse.read_file(sys.argv[1], WITNESS, chunk_bytes=int(sys.argv[2])):
    if kind == "records":
        out["records"] += x.column("source_record").to_pylist()
    elif kind == "quarantine":
        out["quarantine"] += list(zip(x.column("source_record").to_pylist(), x.column("error_code").to_pylist()))
print(json.dumps(out))
"""


@pytest.mark.parametrize("where", ["first line of the file", "first line of a later chunk"])
def test_a_block_that_starts_with_null_is_read_not_a_crash(tmp_path, where):
    # pyarrow 25's JSON reader dies with SIGSEGV on a block whose first value
    # is `null`: one such line took the whole run down. Read in a child
    # process so that a crash fails this test instead of the test session.
    lines = [_good(i) for i in range(200)]
    at = 0 if where.startswith("first line of the file") else 100
    lines[at] = b"null"
    uri = _write(tmp_path, lines)
    chunk = 1 << 20 if at == 0 else sum(len(l) + 1 for l in lines[:at])   # the chunk ends just before it
    r = subprocess.run([sys.executable, "-c", READ_IN_CHILD, uri, str(chunk)], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0, f"reader died ({r.returncode}): {r.stderr[-500:]}"
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["quarantine"] == [[at + 1, "not_an_object"]]
    assert out["records"] == [i + 1 for i in range(200) if i != at]
