"""The sensor batch pipeline end to end on the real Beam DirectRunner (and
once on the DaskRunner), over sample_data/sensor."""
import glob
import gzip
import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.batch import RunSettings, execute
from pipelines.sensor_batch import sensor_job
from schemas.quarantine import QUARANTINE
from schemas.sensor import SENSOR_DAILY, SENSOR_HOURLY, SENSOR_OUT
from transforms.sensor.days import scored_station_days
from transforms.sensor.rules import SENSOR_RULES, Reason, all_reasons

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "sample_data", "sensor")
STATIONS = f"{SAMPLE}/stations.csv"
NOW = datetime(2026, 11, 21, tzinfo=timezone.utc)
DAILY_CODES = {Reason.QOD_BELOW_MIN, Reason.POL_FAILED}


def run(out, readings=None, stations=STATIONS, beam_args=(), **kw):
    return execute(sensor_job(stations), RunSettings(
        out=str(out), now=NOW, beam_args=list(beam_args),
        inputs={"reading": readings or [f"{SAMPLE}/readings-*"]}, **kw))


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sensor_out")
    return out, run(out)


def q(out, sql):
    return duckdb.sql(sql.replace("OUT", str(out))).fetchall()


def test_every_reason_code_appears_in_sample_output(sample_run):
    out, doc = sample_run
    seen = {r[0] for r in q(out, "SELECT DISTINCT unnest(reasons) FROM read_parquet('OUT/sensor/*/*.parquet')")}
    per_reading = set(all_reasons()) - DAILY_CODES
    assert per_reading <= seen, per_reading - seen
    daily = {r[0] for r in q(out, "SELECT DISTINCT unnest(reasons) FROM read_parquet('OUT/sensor_daily/*/*.parquet')")}
    assert DAILY_CODES <= daily
    assert set(doc["counts"]["reasons"]["sensor"]) == seen


def test_accounting_per_file_counts_only_the_sensor_table(sample_run):
    out, doc = sample_run
    acc = doc["accounting"]
    assert acc["ok"] and not acc["rows_from_unlisted_inputs"]
    assert {f["uri"] for f in acc["files"]} == set(glob.glob(f"{SAMPLE}/readings-*"))
    for f in acc["files"]:
        assert f["records"] == f["valid"] + f["invalid"] + f["quarantined"] > 0
    rows = dict(q(out, "SELECT source_uri, count(*) FROM read_parquet(['OUT/sensor/*/*.parquet', "
                       "'OUT/quarantine/*/*.parquet'], union_by_name=true) GROUP BY 1"))
    assert rows == {f["uri"]: f["records"] for f in acc["files"]}
    # Hourly/daily are listed as outputs and counted per table, not per input file.
    tables = {o["table"] for o in doc["outputs"]}
    assert tables == {"sensor", "sensor_hourly", "sensor_daily", "quarantine"}
    by = doc["counts"]["by_table"]
    (n_daily,) = q(out, "SELECT count(*) FROM read_parquet('OUT/sensor_daily/*/*.parquet')")[0]
    assert by["sensor_hourly"] == {"rows": 24 * n_daily}
    assert by["sensor_daily"]["valid"] + by["sensor_daily"]["invalid"] == n_daily
    m = json.load(open(f"{out}/_runs/{doc['run_id']}.json"))
    assert m["accounting"] == acc and m["rules"]["sensor"]["version"] == SENSOR_RULES.version
    assert m["references"]["stations_rows"] == 11 and m["scoring"]["days"] == "auto"
    for o in m["outputs"]:
        assert hashlib.sha256(open(f"{out}/{o['path']}", "rb").read()).hexdigest() == o["sha256"]


def test_output_parquet_schemas_match_declared_schemas(sample_run):
    out, _ = sample_run
    for table, schema in (("sensor", SENSOR_OUT), ("sensor_hourly", SENSOR_HOURLY),
                          ("sensor_daily", SENSOR_DAILY), ("quarantine", QUARANTINE)):
        files = glob.glob(f"{out}/{table}/date=*/*.parquet")
        assert files, table
        for f in files:
            s = pq.read_schema(f)
            assert [(x.name, x.type) for x in s] == [(x.name, x.type) for x in schema], table
            assert s.field(0).metadata == schema.field(0).metadata


def test_partitions_and_scored_days(sample_run):
    out, doc = sample_run
    # Packets land in the partition of their own UTC date (context, stale and future included).
    bad = q(out, "SELECT count(*) FROM read_parquet('OUT/sensor/*/*.parquet', hive_partitioning=true) "
                 "WHERE strftime(to_timestamp(timestamp / 1000) AT TIME ZONE 'UTC', '%Y-%m-%d') <> date::VARCHAR")
    assert bad == [(0,)]
    days = q(out, "SELECT station_id, day::VARCHAR, date::VARCHAR FROM read_parquet('OUT/sensor_daily/*/*.parquet', "
                  "hive_partitioning=true) ORDER BY 1, 2")
    assert all(d == p for _, d, p in days)
    registered = {r[0] for r in q(out, f"SELECT station_id FROM read_csv('{STATIONS}')")}
    # The 6 h context before 2026-11-20 is never scored as its own day; the relocated
    # station, uploaded with a day more history, gets that full day scored too.
    assert {s for s, d, _ in days if d == "2026-11-20"} == registered
    assert [(s, d) for s, d, _ in days if d != "2026-11-20"] == [("WXM-BER-00002", "2026-11-19")]
    hours = q(out, "SELECT station_id, hour_start::DATE::VARCHAR, count(*), count(DISTINCT hour_start) "
                   "FROM read_parquet('OUT/sensor_hourly/*/*.parquet') GROUP BY 1, 2")
    assert sorted((s, d) for s, d, _, _ in hours) == [(s, d) for s, d, _ in days]
    assert all(n == 24 == m for _, _, n, m in hours)


def test_proof_of_location_scenarios(sample_run):
    out, _ = sample_run
    pol = {(s, d): (p, f) for s, d, p, f in q(
        out, "SELECT station_id, day::VARCHAR, pol_score, pol_flags FROM read_parquet('OUT/sensor_daily/*/*.parquet')")}
    assert pol[("WXM-BER-00002", "2026-11-19")] == (1.0, [])
    assert pol[("WXM-BER-00002", "2026-11-20")] == (0.0, ["outside_claimed_cell", "relocated"])
    assert pol[("WXM-ATH-00001", "2026-11-20")] == (0.0, ["outside_claimed_cell"])
    assert pol[("WXM-ATH-00002", "2026-11-20")] == (0.0, ["no_gnss"])
    assert sum(p == (1.0, []) for p in pol.values()) >= 8


def test_malformed_lines_are_quarantined_with_raw_text_and_line(sample_run):
    out, _ = sample_run
    rows = q(out, "SELECT source, source_uri, source_record, raw_record, error_code, record_sha256 "
                  "FROM read_parquet('OUT/quarantine/*/*.parquet')")
    assert len(rows) == 5
    assert {"malformed_json", "not_an_object", "missing_field", "wrong_type"} <= {r[4] for r in rows}
    for source, uri, line, raw, code, sha in rows:
        assert source == "reading"
        opener = gzip.open if uri.endswith(".gz") else open
        with opener(uri, "rb") as f:
            assert f.read().split(b"\n")[line - 1] == raw
        assert hashlib.sha256(raw).hexdigest() == sha


def _station_lines(station: str) -> list[list[bytes]]:
    """The station's raw lines in each plain JSON Lines sample file, in file order."""
    out = []
    for f in sorted(glob.glob(f"{SAMPLE}/readings-*.jsonl")):
        lines = [l for l in open(f, "rb").read().split(b"\n") if f'"station_id":"{station}"'.encode() in l]
        out.append(lines)
    return out


def test_station_split_across_files_scores_like_one_file(tmp_path):
    # WXM-HEL-00003 has duplicate deliveries, late packets and a conflicting repeat.
    parts = [p for p in _station_lines("WXM-HEL-00003") if p]
    assert len(parts) >= 2
    split, one = tmp_path / "split", tmp_path / "one"
    split.mkdir(), one.mkdir()
    for i, lines in enumerate(parts):
        (split / f"part-{i}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (one / "all.jsonl").write_bytes(b"\n".join(l for p in parts for l in p) + b"\n")
    a, b = tmp_path / "out-split", tmp_path / "out-one"
    da, db = run(a, [f"{split}/*.jsonl"]), run(b, [f"{one}/*.jsonl"])
    assert da["accounting"]["ok"] and db["accounting"]["ok"]
    flags = ", ".join(f"{v}_flags" for v in ("temperature", "humidity", "pressure", "wind_speed", "wind_direction",
                                             "illuminance", "precipitation"))
    sql = f"SELECT timestamp, temperature, verdict, reasons, {flags} FROM read_parquet('OUT/sensor/*/*.parquet') ORDER BY ALL"
    ra, rb = q(a, sql), q(b, sql)
    assert ra == rb and len(ra) == sum(map(len, parts))
    assert {r for row in ra for r in row[3]} >= {"duplicate_reading", "timestamp_order"}
    for table in ("sensor_hourly", "sensor_daily"):
        sql = f"SELECT * EXCLUDE (run_id, ingested_at) FROM read_parquet('OUT/{table}/*/*.parquet') ORDER BY ALL"
        assert q(a, sql) == q(b, sql), table


def test_context_only_days_are_not_scored():
    D = 20_412 * 86_400_000  # 2025-11-20
    H = 3_600_000
    ids = pa.array(["ctx", "ctx", "ctx", "ctx", "jitter", "jitter", "early", "early", "alone", "alone",
                    "stale", "today"])
    ts = np.array([D - 5 * H, D + H, D + 30 * H, D + 49 * H, D - 6.5 * H, D + H, D - 8 * H, D + H, D - 3 * H,
                   D - 2 * H, D - 90 * 86_400_000, D + 49 * H]).astype(np.int64)
    c = SENSOR_RULES.resolve()
    got_ids, got_days = scored_station_days(ids, ts, D + 50 * H, c)
    got = sorted(zip(got_ids.to_pylist(), (got_days - 20_412).tolist()))
    # ctx: D−1 is only context of D; jitter: a packet just before 18:00 keeps it context;
    # early: D−1 from 16:00 is a day of its own; alone: no next day; stale: never scored;
    # today (D+2): not ended at now, not scored yet.
    assert got == [("alone", -1), ("ctx", 0), ("ctx", 1), ("early", -1), ("early", 0), ("jitter", 0)]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=240)


def test_cli_batch_sensor_and_missing_registry(tmp_path):
    out = tmp_path / "cli"
    r = _cli("batch", "sensor", "--readings", f"{SAMPLE}/readings-*.jsonl*", "--readings",
             f"{SAMPLE}/readings-*.parquet", "--stations", STATIONS, "--out", str(out), "--now", "2026-11-21T00:00:00Z")
    assert r.returncode == 0, r.stderr
    assert "accounting OK" in r.stdout and "sensor_daily" in r.stdout
    assert "Traceback" not in r.stderr
    assert len(glob.glob(f"{out}/_runs/*.json")) == 1
    r = _cli("batch", "sensor", "--readings", f"{SAMPLE}/readings-*", "--stations", "/nonexistent/stations.csv",
             "--out", str(tmp_path / "o"))
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "file not found: /nonexistent/stations.csv" in lines[0], r.stderr
    assert not os.path.exists(tmp_path / "o" / "_runs")


def file_hashes(out):
    return {os.path.relpath(p, out): hashlib.sha256(open(p, "rb").read()).hexdigest()
            for p in glob.glob(f"{out}/*/*/*.parquet")}


def test_dask_runner_writes_byte_identical_parquet(tmp_path, sample_run):
    from dask.distributed import LocalCluster
    direct, _ = sample_run
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        doc = run(tmp_path / "dask", beam_args=["--runner=dask", f"--dask_client_address={cluster.scheduler_address}"])
    assert doc["runner"] == "dask" and doc["accounting"]["ok"]
    a, b = file_hashes(direct), file_hashes(tmp_path / "dask")
    assert a == b and len(a) > 10
