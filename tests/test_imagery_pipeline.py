"""The imagery batch pipeline end to end on the real Beam DirectRunner (and
once on the DaskRunner), over sample_data/imagery."""
import glob
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone

import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines.batch import RunSettings, execute
from pipelines.imagery_batch import imagery_job
from schemas.imagery import IMAGERY_OUT
from schemas.quarantine import QUARANTINE
from transforms.imagery.rules import ALL_REASONS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "sample_data", "imagery")
NOW = datetime(2026, 11, 21, tzinfo=timezone.utc)
FRAMES = [f"{SAMPLE}/frames-*", f"{SAMPLE}/mapillary-*.jsonl"]
VERDICT_COLS = "device_id, frame_id, captured_at, verdict, reasons, sequence_index, dt_prev_ms, " \
               "round(distance_prev_m, 6), cell"


def run(out, frames=None, devices=f"{SAMPLE}/devices.csv", beam_args=(), **kw):
    return execute(imagery_job(devices), RunSettings(out=str(out), now=NOW, inputs={"frame": frames or FRAMES},
                                                     beam_args=list(beam_args), **kw))


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return out, run(out)


def q(out, sql):
    return duckdb.sql(sql.replace("OUT", str(out))).fetchall()


def _lines(uri: str) -> list[bytes]:
    opener = gzip.open if uri.endswith(".gz") else open
    with opener(uri, "rb") as f:
        return f.read().split(b"\n")


def test_every_reason_code_appears_in_sample_output(sample_run):
    out, doc = sample_run
    seen = {r[0] for r in q(out, "SELECT DISTINCT unnest(reasons) FROM read_parquet('OUT/imagery/*/*.parquet')")}
    assert set(ALL_REASONS) <= seen, set(ALL_REASONS) - seen
    assert set(doc["counts"]["reasons"]["imagery"]) == set(ALL_REASONS)
    # Mostly clean data: faults are the exception, as in real uploads.
    valid, total = q(out, "SELECT count(*) FILTER (verdict = 'valid'), count(*) FROM read_parquet('OUT/imagery/*/*.parquet')")[0]
    assert 0.85 < valid / total < 0.99


def test_accounting_per_file_and_manifest(sample_run):
    out, doc = sample_run
    acc = doc["accounting"]
    assert acc["ok"]
    files = {f["uri"] for f in acc["files"]}
    assert files == set(glob.glob(FRAMES[0]) + glob.glob(FRAMES[1])) and len(files) == 4
    for f in acc["files"]:
        assert f["records"] == f["valid"] + f["invalid"] + f["quarantined"] > 0
    # The committed Parquet agrees with the manifest, file by file.
    rows = dict(q(out, "SELECT source_uri, count(*) FROM read_parquet('OUT/*/*/*.parquet', union_by_name=true) GROUP BY 1"))
    for f in acc["files"]:
        assert rows[f["uri"]] == f["records"]
    # The manifest on disk is the returned document; rules and references are recorded.
    on_disk = json.load(open(f"{out}/_runs/{doc['run_id']}.json"))
    assert on_disk["run_id"] == doc["run_id"] and on_disk["source"] == "imagery"
    assert on_disk["accounting"] == acc and on_disk["counts"] == doc["counts"]
    rules = on_disk["rules"]
    assert rules["version"] == "imagery-1.0.0"
    assert rules["imagery_frame"]["constants"]["max_hdop"] == 4.0
    assert [r["reason"] for r in rules["imagery_sequence"]["table"]][:2] == ["non_increasing_time", "too_fast"]
    assert on_disk["references"]["devices"].endswith("devices.csv") and on_disk["references"]["devices_rows"] == 4
    paths = {o["path"] for o in on_disk["outputs"]}
    assert paths == {os.path.relpath(p, out) for p in glob.glob(f"{out}/*/date=*/*.parquet")}
    # Partitions follow the UTC date of captured_at (old footage, clock ahead).
    dates = {str(r[0]) for r in q(out, "SELECT DISTINCT date FROM read_parquet('OUT/imagery/*/*.parquet', hive_partitioning=true)")}
    assert "2026-11-20" in dates and len(dates) >= 2
    (bad,) = q(out, """SELECT count(*) FROM read_parquet('OUT/imagery/*/*.parquet', hive_partitioning=true)
                       WHERE strftime(make_timestamp(captured_at * 1000), '%Y-%m-%d') <> CAST(date AS VARCHAR)""")[0]
    assert bad == 0


def test_output_parquet_schema_equals_declared(sample_run):
    out, doc = sample_run
    for table, schema in (("imagery", IMAGERY_OUT), ("quarantine", QUARANTINE)):
        files = glob.glob(f"{out}/{table}/date=*/*.parquet")
        assert files, table
        for f in files:
            s = pq.read_schema(f)
            assert [(x.name, x.type) for x in s] == [(x.name, x.type) for x in schema], (table, f)
            assert s.field("captured_at" if table == "imagery" else "source_uri").metadata == \
                schema.field("captured_at" if table == "imagery" else "source_uri").metadata
    (n_bad,) = q(out, f"""SELECT count(*) FROM read_parquet('OUT/imagery/*/*.parquet')
        WHERE run_id <> '{doc["run_id"]}' OR rules_version <> 'imagery-1.0.0'
           OR ingested_at <> TIMESTAMPTZ '2026-11-21 00:00:00+00' OR source_record < 1
           OR length(record_sha256) <> 64 OR length(source_sha256) <> 64""")[0]
    assert n_bad == 0


def test_malformed_lines_are_quarantined_with_raw_text_and_line(sample_run):
    out, _ = sample_run
    rows = q(out, "SELECT source_uri, source_record, raw_record, error_code, error, record_sha256 "
                  "FROM read_parquet('OUT/quarantine/*/*.parquet')")
    assert len(rows) == 12
    assert {r[3] for r in rows} == {"malformed_json", "not_an_object", "missing_field", "wrong_type",
                                    "bad_encoding", "bad_value"}
    assert {os.path.basename(r[0]) for r in rows} == {"frames-0000.jsonl.gz", "frames-0001.jsonl",
                                                      "mapillary-0000.jsonl"}
    for uri, line, raw, code, err, sha in rows:
        assert _lines(uri)[line - 1] == raw, (uri, line)
        assert hashlib.sha256(raw).hexdigest() == sha
        assert err


def _split_device(out):
    """A device whose drive (one sequence) continues from one input file into another."""
    rows = q(out, """SELECT device_id, sequence_index, list(DISTINCT source_uri ORDER BY source_uri)
                     FROM read_parquet('OUT/imagery/*/*.parquet') WHERE source_uri LIKE '%frames-%'
                     GROUP BY ALL HAVING count(DISTINCT source_uri) > 1 ORDER BY ALL""")
    assert rows, "the sample must hold a drive split across two files"
    return rows[0]


def test_sequence_checks_see_a_device_across_two_files(sample_run, tmp_path):
    out, _ = sample_run
    device, seq, uris = _split_device(out)
    # Across the file boundary the frame is judged against the other file's frame.
    steps = q(out, f"""SELECT source_uri, lag(source_uri) OVER w, dt_prev_ms, sequence_index, verdict
                       FROM read_parquet('OUT/imagery/*/*.parquet') WHERE device_id = '{device}' AND verdict = 'valid'
                       WINDOW w AS (ORDER BY captured_at, source_uri, source_record)""")
    crossings = [s for s in steps if s[1] is not None and s[0] != s[1] and s[3] == seq]
    assert crossings and all(c[2] is not None and 0 < c[2] <= 2000 for c in crossings)
    # Move the device's lines out of both files into a file of their own: same verdicts for every frame.
    inputs = tmp_path / "in"
    inputs.mkdir()
    for uri in glob.glob(FRAMES[0]) + glob.glob(FRAMES[1]):
        shutil.copy(uri, inputs / os.path.basename(uri))
    own = []
    for uri in uris:
        keep = []
        for line in _lines(uri):
            try:
                rec = json.loads(line)
            except ValueError:
                rec = None
            if isinstance(rec, dict) and (rec.get("device_id") or rec.get("deviceId")) == device:
                own.append(line)
            else:
                keep.append(line)
        with (gzip.open if uri.endswith(".gz") else open)(inputs / os.path.basename(uri), "wb") as f:
            f.write(b"\n".join(keep))
    assert len(own) > 100
    (inputs / "frames-9999.jsonl").write_bytes(b"\n".join(own) + b"\n")
    out2 = tmp_path / "o"
    doc2 = run(out2, frames=[f"{inputs}/frames-*", f"{inputs}/mapillary-*.jsonl"])
    assert doc2["accounting"]["ok"]
    files = {os.path.basename(r[0]) for r in q(out2, f"SELECT DISTINCT source_uri FROM read_parquet('OUT/imagery/*/*.parquet') WHERE device_id = '{device}'")}
    assert files == {"frames-9999.jsonl"}
    a = q(out, f"SELECT {VERDICT_COLS} FROM read_parquet('OUT/imagery/*/*.parquet') ORDER BY ALL")
    b = q(out2, f"SELECT {VERDICT_COLS} FROM read_parquet('OUT/imagery/*/*.parquet') ORDER BY ALL")
    assert a == b


def test_generator_reproduces_the_sample(tmp_path):
    from pipelines.generate.imagery import generate
    generate(str(tmp_path), rows=3000, seed=7, files=3)
    names = sorted(os.listdir(SAMPLE))
    assert names == sorted(os.listdir(tmp_path))
    for name in names:
        assert _lines(f"{SAMPLE}/{name}") == _lines(str(tmp_path / name)), name
    assert sum(os.path.getsize(f"{SAMPLE}/{n}") for n in names) < 2 << 20


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=240)


def test_cli_batch_imagery(tmp_path, sample_run):
    """Without a device registry, with a rules override: exit 0, summary, manifest."""
    rules = tmp_path / "rules.toml"
    rules.write_text("[rules.imagery_frame]\nmax_hdop = 3.0\n")
    out = tmp_path / "cli"
    r = _cli("batch", "imagery", "--frames", FRAMES[0], "--frames", FRAMES[1], "--out", str(out),
             "--now", "2026-11-21T00:00:00Z", "--rules", str(rules))
    assert r.returncode == 0, r.stderr
    assert "accounting OK" in r.stdout and "imagery" in r.stdout
    assert "Traceback" not in r.stderr
    (m,) = glob.glob(f"{out}/_runs/*.json")
    doc = json.load(open(m))
    assert doc["rules"]["version"].startswith("frame=imagery-1.0.0+")
    assert doc["rules"]["imagery_frame"]["constants"]["max_hdop"] == 3.0
    assert doc["references"]["devices"] is None
    base = sample_run[1]["counts"]["reasons"]["imagery"]
    assert doc["counts"]["reasons"]["imagery"]["high_hdop"] > base["high_hdop"]


@pytest.mark.parametrize("args,msg", [
    (["--frames", "/nonexistent/*.jsonl"], "glob matches no file: /nonexistent/*.jsonl"),
    (["--devices", "/nonexistent/devices.csv"], "file not found: /nonexistent/devices.csv"),
    (["--devices", f"{ROOT}/sample_data/witness/registry.csv"], "lacks column(s) device_id"),
    (["--now", "yesterday"], "not an ISO 8601 time"),
])
def test_cli_bad_arguments_give_one_line_errors(tmp_path, args, msg):
    base = {"--frames": FRAMES[0], "--out": str(tmp_path / "o"), "--devices": f"{SAMPLE}/devices.csv"}
    base.update(dict(zip(args[::2], args[1::2])))
    r = _cli("batch", "imagery", *[x for kv in base.items() for x in kv])
    assert r.returncode != 0
    assert msg in r.stderr and "Traceback" not in r.stderr
    if args[0] != "--now":  # click's usage errors add a usage hint; input errors are one line
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_dask_runner_writes_the_same_bytes(sample_run, tmp_path):
    from dask.distributed import LocalCluster
    out, direct = sample_run
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        doc = run(tmp_path / "dask", beam_args=["--runner=dask", f"--dask_client_address={cluster.scheduler_address}"])
    assert doc["runner"] == "dask" and direct["runner"] == "direct"
    assert doc["run_id"] == direct["run_id"]
    assert doc["accounting"] == direct["accounting"] and doc["counts"] == direct["counts"]

    def hashes(root):
        return {os.path.relpath(p, root): hashlib.sha256(open(p, "rb").read()).hexdigest()
                for p in glob.glob(f"{root}/*/date=*/*.parquet")}
    a, b = hashes(out), hashes(tmp_path / "dask")
    assert a and a == b
