"""Hostile input corpus: one test per class of bad input.

Every class must end as quarantine rows (with the error code and the line),
as invalid rows with a reason, or as one clear line naming the file and a
non-zero exit — never a traceback, a hang or a silent drop — while the
per-file accounting (records = valid + invalid + quarantined) still holds
for everything else. Inputs are built at test time (the 50 MB line and
binary garbage are never committed). Most classes share one real run over
a landing folder holding all of them plus clean files; classes that fail a
run, or need their own registry or environment, run alone.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _sched import D1, HEXSIEVE, NOW, cli_inproc, generated, landing, rows, run_inproc, write_config  # noqa: E402

GLOBS = dict(witness_globs='["landing/witness/{date}/witnesses-*"]')


def good_lines() -> list[bytes]:
    src = os.path.join(generated(), "witnesses-0001.jsonl")  # file 0 carries the generator's own faults
    return [l for l in open(src, "rb").read().splitlines() if l.strip()]


def obj(i: int = 0, **kw) -> dict:
    d = json.loads(good_lines()[i])
    d.update(kw)
    return d


def j(d) -> bytes:
    return json.dumps(d).encode()


def around(bad: bytes) -> bytes:
    """good line, the bad line (line 2), good line."""
    g = good_lines()
    return g[10] + b"\n" + bad + b"\n" + g[11] + b"\n"


def _parquet(t: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(t, buf)
    return buf.getvalue()


# name → (file name, bytes builder, [(line, error_code, text in error)], rows parsed from the file)
LINE_CLASSES = {
    "empty_file": ("witnesses-h-empty.jsonl", lambda: b"", [(0, "empty_file", "holds no records")], 0),
    "blank_lines_only": ("witnesses-h-blank.jsonl", lambda: b"\n  \n\t\n", [(0, "empty_file", "3 blank line")], 0),
    "non_utf8": ("witnesses-h-latin1.jsonl",
                 lambda: around(j(obj(1)).replace(b'"SF9BW125"', b'"SF9BW125\xe9\xff"')),
                 [(2, "bad_encoding", "not UTF-8")], 2),
    "json_array_instead_of_lines": ("witnesses-h-array.jsonl", lambda: j([obj(1), obj(2)]) + b"\n",
                                    [(1, "not_an_object", "got list")], 0),
    "string_instead_of_object": ("witnesses-h-str.jsonl", lambda: around(b'"hello"'),
                                 [(2, "not_an_object", "got str")], 2),
    # pyarrow reads a `null` line as a row of nulls, and dies (SIGSEGV) on
    # a block whose first value is `null`.
    "null_line": ("witnesses-h-nullline.jsonl", lambda: around(b"null"),
                  [(2, "not_an_object", "got NoneType")], 2),
    "null_first_line": ("witnesses-h-nullfirst.jsonl", lambda: b"null\n" + around(j(obj(1))),
                        [(1, "not_an_object", "got NoneType")], 3),
    "not_json": ("witnesses-h-text.jsonl", lambda: around(b"pub_key=112abc signal=-900"),
                 [(2, "malformed_json", "not JSON")], 2),
    "wrong_type_string_for_int": ("witnesses-h-wrongtype.jsonl", lambda: around(j(obj(1, signal="strong"))),
                                  [(2, "wrong_type", "signal")], 2),
    "float_for_int": ("witnesses-h-float.jsonl", lambda: around(j(obj(1, signal=-900.5))),
                      [(2, "wrong_type", "-900.5")], 2),
    "nan": ("witnesses-h-nan.jsonl", lambda: around(j(obj(1)).replace(b'"signal": -', b'"signal": NaN, "x": -')),
            [(2, "malformed_json", "NaN is not a JSON number")], 2),
    "infinity": ("witnesses-h-inf.jsonl",
                 lambda: around(j(obj(1)).replace(b'"snr": ', b'"snr": Infinity, "y": ')),
                 [(2, "malformed_json", "Infinity is not a JSON number")], 2),
    "huge_float": ("witnesses-h-1e400.jsonl", lambda: around(j(obj(1)).replace(b'"frequency": ', b'"frequency": 1e400, "z": ')),
                   [(2, "wrong_type", "Number too big")], 2),
    "integer_overflow": ("witnesses-h-overflow.jsonl", lambda: around(j(obj(1, frequency=10 ** 23))),
                         [(2, "wrong_type", "uint64")], 2),
    "negative_unsigned": ("witnesses-h-negative.jsonl", lambda: around(j(obj(1, frequency=-5))),
                          [(2, "wrong_type", "-5")], 2),
    "timestamp_in_seconds": ("witnesses-h-seconds.jsonl",
                             lambda: around(j(obj(1, received_timestamp=obj(1)["received_timestamp"] // 1000))),
                             [(2, "bad_value", "looks like s since epoch, expected ms")], 2),
    "timestamp_in_ns_for_ms": ("witnesses-h-ns.jsonl",
                               lambda: around(j(obj(1, received_timestamp=obj(1)["received_timestamp"] * 10 ** 6))),
                               [(2, "bad_value", "looks like ns since epoch, expected ms")], 2),
    "year_1970": ("witnesses-h-1970.jsonl", lambda: around(j(obj(1, received_timestamp=0))),
                  [(2, "bad_value", "1970-01-01T00:00:00Z")], 2),
    "year_2999": ("witnesses-h-2999.jsonl", lambda: around(j(obj(1, received_timestamp=32_493_081_600_000))),
                  [(2, "bad_value", "received_timestamp=32493081600000 is 2999-")], 2),
    "timestamp_beyond_int64": ("witnesses-h-int64.jsonl", lambda: around(j(obj(1, timestamp=32_493_081_600 * 10 ** 9))),
                               [(2, "wrong_type", "int64")], 2),
    "deeply_nested": ("witnesses-h-deep.jsonl", lambda: around(b'{"pub_key": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"),
                      [(2, "malformed_json", "nested too deeply")], 2),
    "nul_bytes": ("witnesses-h-nul.jsonl", lambda: around(j(obj(1))[:30] + b"\x00\x00" + j(obj(1))[30:]),
                  [(2, "malformed_json", "not JSON")], 2),
    "lone_surrogate": ("witnesses-h-surrogate.jsonl", lambda: around(j(obj(1)).replace(b'"SF9BW125"', b'"\\ud800"')),
                       [(2, "wrong_type", "surrogate")], 2),
    "duplicate_keys": ("witnesses-h-dupkey.jsonl",
                       lambda: around(j(obj(1)).replace(b'"snr": ', b'"signal": "again", "snr": ')),
                       [(2, "wrong_type", "specified twice")], 2),
    "null_required_field": ("witnesses-h-null.jsonl", lambda: around(j(obj(1, pub_key=None))),
                            [(2, "missing_field", "pub_key")], 2),
    "schema_drift_renamed_field": ("witnesses-h-renamed.jsonl",
                                   lambda: around(j({("rssi" if k == "signal" else k): v for k, v in obj(1).items()})),
                                   [(2, "missing_field", "signal")], 2),
    "nested_report_wrong_kind": ("witnesses-h-report.jsonl",
                                 lambda: around(b'{"received_timestamp": 1795154327657, "report": "x"}'),
                                 [(2, "wrong_type", "report")], 2),
    "schema_drift_extra_fields": ("witnesses-h-extra.jsonl",
                                  lambda: around(j(obj(1, firmware="2.1.0", radio={"chip": "sx1302"}, tags=[1, 2]))),
                                  [], 3),
    "bom_and_crlf": ("witnesses-h-bomcrlf.jsonl", lambda: b"\xef\xbb\xbf" + around(j(obj(1))).replace(b"\n", b"\r\n"),
                     [], 3),
    "no_trailing_newline": ("witnesses-h-nonl.jsonl", lambda: around(j(obj(1))).rstrip(b"\n"), [], 3),
    "gzip_name_plain_bytes": ("witnesses-h-fake.jsonl.gz", lambda: around(j(obj(1))),
                              [(1, "unreadable_file", "not a valid gzip stream")], 0),
    "corrupt_parquet": ("witnesses-h-corrupt.parquet", lambda: b"PAR1" + random.Random(3).randbytes(5000),
                        [(0, "unreadable_file", "not a readable Parquet file")], 0),
    "parquet_wrong_schema": ("witnesses-h-wrongschema.parquet",
                             lambda: _parquet(pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})),
                             [(0, "missing_field", "pub_key"), (1, "missing_field", "pub_key"),
                              (2, "missing_field", "pub_key")], 0),
    "parquet_wrong_types": ("witnesses-h-wrongtypes.parquet",
                            lambda: _parquet(pa.Table.from_pylist([{**obj(1), "signal": "-900"},
                                                                   {**obj(2), "signal": "strong"}])),
                            [(0, "wrong_type", "Parquet column type"), (1, "wrong_type", "Parquet column type")], 0),
    "duplicate_file_two_names": ("witnesses-h-copy.jsonl",
                                 lambda: open(os.path.join(generated(), "witnesses-0001.jsonl"), "rb").read(),
                                 [(0, "duplicate_file", "witnesses-0001.jsonl")], 0),
}
CUSTOM_CLASSES = ["truncated_gzip", "binary_garbage", "huge_line_50mb", "json_pretty_printed",
                  "duplicate_records", "named_pipe"]


@pytest.fixture(scope="module")
def combined(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("hostile"))
    ddir = landing(base)
    for name, (fname, build, _, _) in LINE_CLASSES.items():
        open(os.path.join(ddir, fname), "wb").write(build())
    g = good_lines()
    full = gzip.compress(b"\n".join(g[:200]) + b"\n")
    open(os.path.join(ddir, "witnesses-h-truncated.jsonl.gz"), "wb").write(full[: len(full) // 2])
    open(os.path.join(ddir, "witnesses-h-garbage.jsonl"), "wb").write(random.Random(1).randbytes(64 << 10))
    with open(os.path.join(ddir, "witnesses-h-huge.jsonl"), "wb") as f:
        f.write(g[20] + b"\n" + b'{"pub_key": "' + b"A" * (50 << 20) + b'"}\n' + g[21] + b"\n")
    open(os.path.join(ddir, "witnesses-h-pretty.jsonl"), "w").write(json.dumps([obj(1), obj(2)], indent=2))
    open(os.path.join(ddir, "witnesses-h-duprec.jsonl"), "wb").write(g[30] + b"\n" + g[30] + b"\n")
    os.mkfifo(os.path.join(ddir, "witnesses-h-fifo.jsonl"))
    cfg = write_config(base, **GLOBS)
    o = run_inproc(cfg)
    assert o.status == "committed", o.message
    out = os.path.join(base, "out")
    q = duckdb.sql(f"SELECT source_uri, source_record, error_code, error, raw_truncated, octet_length(raw_record) "
                   f"FROM read_parquet('{out}/quarantine/*/*.parquet') ORDER BY source_uri, source_record").fetchall()
    w = duckdb.sql(f"SELECT source_uri, source_record, verdict, reasons "
                   f"FROM read_parquet('{out}/witness/*/*.parquet') ORDER BY source_uri, source_record").fetchall()
    return {"dir": ddir, "doc": o.manifest, "q": q, "w": w}


def quarantined(c, uri):
    return [r for r in c["q"] if r[0] == uri]


def parsed(c, uri):
    return [r for r in c["w"] if r[0] == uri]


def accounted(c, uri):
    f = [f for f in c["doc"]["accounting"]["files"] if f["uri"] == uri]
    assert len(f) == 1, f"{uri} has no read receipt"
    f = f[0]
    assert f["ok"] and f["records"] == f["valid"] + f["invalid"] + f["quarantined"]
    assert c["doc"]["accounting"]["ok"]  # and so does every other file of the run
    return f


@pytest.mark.parametrize("name", list(LINE_CLASSES))
def test_line_class(combined, name):
    fname, _, want, n_parsed = LINE_CLASSES[name]
    uri = os.path.join(combined["dir"], fname)
    got = [(r[1], r[2]) for r in quarantined(combined, uri)]
    assert got == [(line, code) for line, code, _ in want], got
    for r, (_, _, text) in zip(quarantined(combined, uri), want):
        assert text in r[3], r[3]
    assert len(parsed(combined, uri)) == n_parsed
    f = accounted(combined, uri)
    assert f["quarantined"] == len(want)


@pytest.mark.parametrize("name", CUSTOM_CLASSES)
def test_custom_class(combined, name):
    d = combined["dir"]
    if name == "truncated_gzip":
        uri = os.path.join(d, "witnesses-h-truncated.jsonl.gz")
        q = quarantined(combined, uri)
        n = len(parsed(combined, uri))
        assert 0 < n < 200 and len(q) == 1
        assert q[0][1:3] == (n + 1, "unreadable_file") and "truncated" in q[0][3]
    elif name == "binary_garbage":
        uri = os.path.join(d, "witnesses-h-garbage.jsonl")
        q = quarantined(combined, uri)
        assert q and not parsed(combined, uri)
        assert {r[2] for r in q} <= {"bad_encoding", "malformed_json", "not_an_object"}
        assert [r[1] for r in q] == sorted(r[1] for r in q) and q[0][1] == 1
    elif name == "huge_line_50mb":
        uri = os.path.join(d, "witnesses-h-huge.jsonl")
        q = quarantined(combined, uri)
        assert [(r[1], r[2], r[4], r[5]) for r in q] == [(2, "record_too_large", True, 1 << 20)]
        assert "52,428," in q[0][3]
        assert [r[1] for r in parsed(combined, uri)] == [1, 3]
    elif name == "json_pretty_printed":
        uri = os.path.join(d, "witnesses-h-pretty.jsonl")
        q = quarantined(combined, uri)
        n_lines = len(json.dumps([obj(1), obj(2)], indent=2).splitlines())
        assert [r[1] for r in q] == list(range(1, n_lines + 1)) and not parsed(combined, uri)
        assert {r[2] for r in q} <= {"malformed_json", "not_an_object"}
    elif name == "duplicate_records":
        uri = os.path.join(d, "witnesses-h-duprec.jsonl")
        p = parsed(combined, uri)
        assert [r[1] for r in p] == [1, 2] and not quarantined(combined, uri)
        # the same report also sits in witnesses-0001.jsonl: kept, and flagged, never dropped
        assert all(r[2] == "invalid" and "duplicate" in r[3] for r in p), p
    elif name == "named_pipe":
        uri = os.path.join(d, "witnesses-h-fifo.jsonl")
        q = quarantined(combined, uri)
        assert [(r[1], r[2]) for r in q] == [(0, "unreadable_file")] and "named pipe" in q[0][3]
    accounted(combined, uri)


# --- classes that need a run of their own ------------------------------------------
def _base(tmp_path, **cfg_kw):
    base = str(tmp_path)
    ddir = landing(base)
    return base, ddir, write_config(base, **cfg_kw)


def _one_line_error(code, err, *needles):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], lines[0]


def missing_registry(tmp_path, capsys):
    base, _, cfg = _base(tmp_path, registry="reference/nope.csv")
    code, _, err = cli_inproc(["run", "--config", cfg, "--date", D1, "--now", NOW], capsys)
    _one_line_error(code, err, "gateway registry: file not found", os.path.join(base, "reference", "nope.csv"))
    assert not os.path.exists(os.path.join(base, "out", "witness"))


def registry_missing_column(tmp_path, capsys):
    base, _, cfg = _base(tmp_path, registry="reference/reg2.csv")
    open(os.path.join(base, "reference", "reg2.csv"), "w").write("pub_key,where\n112abc,8c1f\n")
    code, _, err = cli_inproc(["run", "--config", cfg, "--date", D1, "--now", NOW], capsys)
    _one_line_error(code, err, "reg2.csv lacks column(s) location")


def _registry_variant(tmp_path, capsys, edit):
    """Copy the registry with one row edited; the run commits and names the row."""
    base, _, cfg = _base(tmp_path, registry="reference/reg2.csv")
    src = open(os.path.join(base, "reference", "registry.csv")).read().splitlines()
    key = src[1].split(",")[0]
    open(os.path.join(base, "reference", "reg2.csv"), "w").write("\n".join(edit(src)) + "\n")
    code, out, err = cli_inproc(["run", "--config", cfg, "--date", D1, "--now", NOW], capsys)
    assert code == 0, err
    assert "reg2.csv: 1 problem(s), first: row 1:" in out, out
    hit = duckdb.sql(f"SELECT verdict, reasons FROM read_parquet('{base}/out/*/*/*.parquet', union_by_name=true) "
                     f"WHERE pub_key = '{key}'").fetchall()
    assert hit and all(v == "invalid" and "not_asserted" in r for v, r in hit), hit
    return key, out


def registry_bad_h3_cell(tmp_path, capsys):
    def edit(lines):
        f = lines[1].split(",")
        f[1] = "zz-not-a-cell"
        return [lines[0], ",".join(f)] + lines[2:]
    _, out = _registry_variant(tmp_path, capsys, edit)
    assert "'zz-not-a-cell' is not an H3 cell; treated as not asserted" in out


def _latlng(lat, lng):
    def edit(lines):
        out = [lines[0] + ",lat,lng"]
        for i, l in enumerate(lines[1:]):
            if i == 0:
                f = l.split(",")
                f[1] = ""
                out.append(",".join(f) + f",{lat},{lng}")
            else:
                out.append(l + ",,")
        return out
    return edit


def registry_lat_91(tmp_path, capsys):
    _, out = _registry_variant(tmp_path, capsys, _latlng(91, 10))
    assert "lat 91.0, lng 10.0 is not on the globe" in out


def registry_lon_minus_181(tmp_path, capsys):
    _, out = _registry_variant(tmp_path, capsys, _latlng(45, -181))
    assert "lat 45.0, lng -181.0 is not on the globe" in out


def broken_symlink_in_landing(tmp_path, capsys):
    base, ddir, cfg = _base(tmp_path)
    link = os.path.join(ddir, "witnesses-9999.jsonl")
    os.symlink(os.path.join(base, "gone.jsonl"), link)
    code, _, err = cli_inproc(["run", "--config", cfg, "--date", D1, "--now", NOW], capsys)
    _one_line_error(code, err, f"landing entry {link} is a broken symbolic link")


def directory_in_landing(tmp_path, capsys):
    base, ddir, cfg = _base(tmp_path)
    os.mkdir(os.path.join(ddir, "witnesses-0009.jsonl"))
    code, _, err = cli_inproc(["run", "--config", cfg, "--date", D1, "--now", NOW], capsys)
    _one_line_error(code, err, os.path.join(ddir, "witnesses-0009.jsonl") + " is a directory")


def disk_full_on_output(tmp_path, capsys, monkeypatch=None):
    """ENOSPC while staging the new Parquet (env-driven fault point in
    fileio.write_bytes): one clear line, the previous date state intact."""
    base, ddir, cfg = _base(tmp_path)
    out = os.path.join(base, "out")
    assert run_inproc(cfg).status == "committed"
    before = {t: rows(out, t) for t in ("witness", "beacon", "quarantine")}
    w = os.path.join(ddir, "witnesses-0001.jsonl")
    open(w, "ab").write(good_lines()[5] + b"\n")
    os.environ["HEXSIEVE_TEST_ENOSPC"] = "/_staging/"
    # The run fails while its graph is built (staging the reference tables):
    # Beam's per-pipeline temp folder, made before, must go with it.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    saved, tempfile.tempdir = tempfile.tempdir, str(tmp)
    try:
        code, _, err = cli_inproc(["run", "--config", cfg, "--date", D1, "--now", NOW], capsys)
    finally:
        del os.environ["HEXSIEVE_TEST_ENOSPC"]
        tempfile.tempdir = saved
    _one_line_error(code, err, "No space left on device", "/_staging/", "nothing committed, previous state intact")
    assert os.listdir(tmp) == []
    assert {t: rows(out, t) for t in before} == before
    assert not os.path.exists(os.path.join(out, "_staging"))
    from pipelines.ledger import Ledger
    led = Ledger(os.path.join(out, "_ledger.duckdb"))
    assert [r["status"] for r in led.rows(uri=w)] == ["committed", "failed"]
    # space is back: the next run does the work
    assert run_inproc(cfg).status == "committed"


def disk_full_during_commit(tmp_path, capsys):
    """ENOSPC when publishing the manifest, after the partitions were
    swapped: the error says so, and the next run completes the commit from
    its journal (no re-processing, nothing lost or doubled)."""
    base, ddir, cfg = _base(tmp_path)
    out = os.path.join(base, "out")
    os.environ["HEXSIEVE_TEST_ENOSPC"] = "/_runs/"
    try:
        code, _, err = cli_inproc(["run", "--config", cfg, "--date", D1, "--now", NOW], capsys)
    finally:
        del os.environ["HEXSIEVE_TEST_ENOSPC"]
    _one_line_error(code, err, "No space left on device", "/_runs/", "the next run completes it")
    o = run_inproc(cfg)
    assert o.status == "noop", o.message
    ref = write_config(base, out=os.path.join(base, "ref"), name="ref.toml")
    run_inproc(ref)
    for t in ("witness", "beacon", "quarantine"):
        assert rows(out, t) == rows(os.path.join(base, "ref"), t)
    assert not os.path.exists(os.path.join(out, "_staging"))


def unreadable_permissions(tmp_path, capsys):
    """chmod 000 on a landing file. Root reads anything, so as root the run
    is started without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH (setpriv)."""
    base, ddir, cfg = _base(tmp_path)
    bad = os.path.join(ddir, "witnesses-0002.jsonl")
    shutil.copy(os.path.join(ddir, "witnesses-0001.jsonl"), bad)
    open(bad, "ab").write(b"\n")  # not a byte-identical twin
    os.chmod(bad, 0)
    cmd = [HEXSIEVE, "run", "--config", cfg, "--date", D1, "--now", NOW]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("root without setpriv cannot be denied read access")
        cmd = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps=-all"] + cmd
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        os.chmod(bad, 0o644)
    assert r.returncode == 0, r.stderr
    q = duckdb.sql(f"SELECT source_record, error_code, error FROM read_parquet('{base}/out/quarantine/*/*.parquet') "
                   f"WHERE source_uri = '{bad}'").fetchall()
    assert len(q) == 1 and q[0][:2] == (0, "unreadable_file") and "Permission denied" in q[0][2], q
    doc = json.load(open(os.path.join(base, "out", "_runs", os.listdir(os.path.join(base, "out", "_runs"))[0])))
    assert doc["accounting"]["ok"]


SEPARATE = {f.__name__: f for f in [missing_registry, registry_missing_column, registry_bad_h3_cell, registry_lat_91,
                                      registry_lon_minus_181, broken_symlink_in_landing, directory_in_landing,
                                      disk_full_on_output, disk_full_during_commit, unreadable_permissions]}


@pytest.mark.parametrize("name", list(SEPARATE))
def test_separate_class(tmp_path, capsys, name):
    SEPARATE[name](tmp_path, capsys)


def test_corpus_size():
    assert len(LINE_CLASSES) + len(CUSTOM_CLASSES) + len(SEPARATE) >= 30
