"""A small output root in the exact published layout, written with pyarrow.

The pipelines are developed in parallel, so the buyer-side tests build their
own OUT/<table>/date=D/part-*.parquet, _runs/*.json and _ledger.duckdb.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os

import duckdb
import h3.api.basic_int as h3i
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas import imagery as ischema
from schemas import quarantine as qschema
from schemas import sensor as sschema
from schemas import witness as wschema

DATES = ["2026-11-19", "2026-11-20", "2026-11-21"]
BOX = (52.40, 52.60, 13.20, 13.60)  # Berlin: lat0, lat1, lng0, lng1
REASONS = ["stale", "bad_rssi", "below_min_distance", "denied_edge", "too_late"]
T0 = {d: int(dt.datetime.fromisoformat(d + "T00:00:00+00:00").timestamp() * 1000) for d in DATES}


def _sha(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _write(out: str, table: str, date: str, t: pa.Table, part: str = "part-0000") -> None:
    d = os.path.join(out, table, f"date={date}")
    os.makedirs(d, exist_ok=True)
    pq.write_table(t, os.path.join(d, f"{part}.parquet"), compression="zstd")


def _default(f: pa.Field, n: int, date: str):
    t = f.type
    if f.nullable:
        return pa.nulls(n, t)
    if pa.types.is_string(t):
        return pa.array([f.name] * n, t)
    if pa.types.is_integer(t):
        return pa.array(np.zeros(n, np.int64), pa.int64()).cast(t)
    if pa.types.is_floating(t):
        return pa.array(np.zeros(n), t)
    if pa.types.is_boolean(t):
        return pa.array([False] * n, t)
    if pa.types.is_list(t):
        return pa.array([[]] * n, t)
    if pa.types.is_timestamp(t):
        return pa.array([dt.datetime.fromisoformat(date + "T00:00:00+00:00")] * n, t)
    if pa.types.is_date(t):
        return pa.array([dt.date.fromisoformat(date)] * n, t)
    if pa.types.is_binary(t):
        return pa.array([b""] * n, t)
    raise TypeError(f"no default for {f}")


def fill(schema: pa.Schema, n: int, date: str, values: dict) -> pa.Table:
    """A table of `schema`: given columns as passed, the rest defaulted — so the
    fixture follows schema changes made by the pipeline authors."""
    cols = []
    for f in schema:
        cols.append(pa.array(values[f.name], f.type) if f.name in values else _default(f, n, date))
    return pa.Table.from_arrays(cols, schema=schema)


def _verdicts(rng, n):
    bad = rng.random(n) < 0.3
    reasons = [[REASONS[i % len(REASONS)]] + ([REASONS[(i + 1) % len(REASONS)]] if i % 5 == 0 else [])
               if b else [] for i, b in enumerate(bad)]
    return np.where(bad, "invalid", "valid").tolist(), reasons


def _prov(n, date, run_id, src, rules="witness-1.0.0"):
    return {"source_uri": [src] * n, "source_record": list(range(1, n + 1)),
            "source_sha256": [_sha(src)] * n,
            "record_sha256": [_sha(src, i, date) for i in range(n)],
            "run_id": [run_id] * n, "pipeline_version": ["0.1.0"] * n,
            "rules_version": [rules] * n,
            "ingested_at": [dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)] * n}


def random_points(rng, n, box=BOX):
    return rng.uniform(box[0], box[1], n), rng.uniform(box[2], box[3], n)


def witness_table(rng, n, date, run_id, hotspots):
    src = f"gs://poc/witness/{date}/reports-{run_id}.jsonl.gz"
    idx = rng.integers(0, len(hotspots), n)
    verdict, reasons = _verdicts(rng, n)
    rts = T0[date] + np.sort(rng.integers(0, 86_400_000, n))
    return fill(wschema.WITNESS_OUT, n, date, {
        "pub_key": [f"wkey{i}" for i in idx], "data": ["ZGF0YQ=="] * n,
        "timestamp": (rts * 1_000_000).tolist(),
        "signal": rng.integers(-1300, -600, n).tolist(), "snr": rng.integers(-200, 100, n).tolist(),
        "frequency": [867_100_000] * n, "datarate": ["SF9BW125"] * n,
        "received_timestamp": rts.tolist(),
        "beacon_pub_key": [f"bkey{i % 50}" for i in range(n)],
        "beaconer_cell": [hotspots[(i * 7) % len(hotspots)] for i in range(n)],
        "witness_cell": [hotspots[i] for i in idx],
        "distance_m": rng.integers(100, 20000, n).tolist(),
        "selected": (rng.random(n) < 0.5).tolist(),
        "participant_side": ["witness"] * n, "verdict": verdict, "reasons": reasons,
        **_prov(n, date, run_id, src)})


def beacon_table(rng, n, date, run_id, hotspots):
    src = f"gs://poc/beacon/{date}/beacons-{run_id}.jsonl.gz"
    verdict, reasons = _verdicts(rng, n)
    rts = T0[date] + np.sort(rng.integers(0, 86_400_000, n))
    return fill(wschema.BEACON_OUT, n, date, {
        "pub_key": [f"bkey{i % 50}" for i in range(n)], "data": ["ZGF0YQ=="] * n,
        "frequency": [867_100_000] * n, "tx_power": [27] * n,
        "timestamp": (rts * 1_000_000).tolist(), "received_timestamp": rts.tolist(),
        "beaconer_cell": [hotspots[i % len(hotspots)] for i in range(n)],
        "verdict": verdict, "reasons": reasons, **_prov(n, date, run_id, src)})


def imagery_table(rng, n, date, run_id, box=BOX):
    src = f"s3://dashcam/{date}/frames-{run_id}.parquet"
    lat, lng = random_points(rng, n, box)
    verdict, reasons = _verdicts(rng, n)
    cells = [h3i.latlng_to_cell(a, b, 15) for a, b in zip(lat.tolist(), lng.tolist())]
    return fill(ischema.IMAGERY_OUT, n, date, {
        "frame_id": [f"f-{date}-{i}" for i in range(n)], "device_id": [f"cam{i % 20}" for i in range(n)],
        "captured_at": (T0[date] + np.arange(n) * 1000).tolist(),
        "lat": lat, "lon": lng, "cell": cells,
        "coverage_cell": [h3i.cell_to_parent(c, 8) for c in cells],
        "heading": rng.uniform(0, 360, n), "verdict": verdict, "reasons": reasons,
        **_prov(n, date, run_id, src, "imagery-1.0.0")})


def station_positions(rng, k=30, box=BOX):
    lat, lng = random_points(rng, k, box)
    lat[3] = np.nan  # a station without a GNSS fix
    return lat, lng


def sensor_tables(rng, date, run_id, st_lat, st_lng):
    src = f"https://wx.example/{date}/readings-{run_id}.jsonl"
    k = len(st_lat)
    sid = np.repeat(np.arange(k), 24)
    hour = np.tile(np.arange(24), k)
    n = len(sid)
    verdict, reasons = _verdicts(rng, n)
    names = [f"st{i:03d}" for i in sid]
    lat = [None if np.isnan(st_lat[i]) else float(st_lat[i]) for i in sid]
    lon = [None if np.isnan(st_lat[i]) else float(st_lng[i]) for i in sid]
    sensor = fill(sschema.SENSOR_OUT, n, date, {
        "station_id": names, "model": ["WS2000"] * n,
        "timestamp": (T0[date] + hour * 3_600_000).tolist(), "lat": lat, "lon": lon,
        "temperature": rng.normal(8, 4, n), "verdict": verdict, "reasons": reasons,
        **_prov(n, date, run_id, src, "sensor-1.0.0")})
    hourly = fill(sschema.SENSOR_HOURLY, n, date, {
        "station_id": names, "model": ["WS2000"] * n,
        "hour_start": [dt.datetime.fromisoformat(date + "T00:00:00+00:00") + dt.timedelta(hours=int(h))
                       for h in hour],
        "packets": rng.integers(0, 21, n).tolist(), "expected_packets": [20] * n,
        "temperature_score": rng.uniform(0, 1, n), **_prov(n, date, run_id, src, "sensor-1.0.0")})
    daily = fill(sschema.SENSOR_DAILY, k, date, {
        "station_id": [f"st{i:03d}" for i in range(k)], "model": ["WS2000"] * k,
        "day": [dt.date.fromisoformat(date)] * k,
        "qod_score": np.round(np.linspace(0.2, 1.0, k), 3),
        "pol_score": [1.0 if i % 4 else 0.0 for i in range(k)],
        "verdict": ["valid"] * k, "reasons": [[]] * k, **_prov(k, date, run_id, src, "sensor-1.0.0")})
    return sensor, hourly, daily


def quarantine_table(n, date, run_id):
    src = f"gs://poc/witness/{date}/reports-{run_id}.jsonl.gz"
    return fill(qschema.QUARANTINE, n, date, {
        "source": ["witness"] * n, "source_uri": [src] * n, "source_record": list(range(n)),
        "source_sha256": [_sha(src)] * n, "record_sha256": [_sha("q", date, i) for i in range(n)],
        "raw_record": [b"{bad"] * n, "error_code": ["malformed_json"] * n,
        "error": ["unexpected end"] * n, "run_id": [run_id] * n})


def build(out: str, *, n_witness: int = 2000, n_imagery: int = 1500, seed: int = 7,
          ledger: bool = True, tables=("witness", "beacon", "imagery", "sensor", "quarantine"),
          box=BOX, n_hotspots: int = 1500) -> str:
    rng = np.random.default_rng(seed)
    hlat, hlng = random_points(rng, n_hotspots, box)
    hotspots = [h3i.latlng_to_cell(a, b, 12) for a, b in zip(hlat.tolist(), hlng.tolist())]
    hotspots[0] = 0  # a hotspot without an asserted location
    st_lat, st_lng = station_positions(rng, box=box)
    os.makedirs(os.path.join(out, "_runs"), exist_ok=True)
    for i, date in enumerate(DATES):
        rid = f"run-{date}"
        if "witness" in tables:
            _write(out, "witness", date, witness_table(rng, n_witness, date, rid, hotspots))
        if "beacon" in tables:
            _write(out, "beacon", date, beacon_table(rng, 300, date, rid, hotspots))
        if "imagery" in tables:
            _write(out, "imagery", date, imagery_table(rng, n_imagery, date, rid, box))
        if "sensor" in tables:
            s, h, d = sensor_tables(rng, date, rid, st_lat, st_lng)
            _write(out, "sensor", date, s)
            _write(out, "sensor_hourly", date, h)
            _write(out, "sensor_daily", date, d)
        if "quarantine" in tables:
            _write(out, "quarantine", date, quarantine_table(5, date, rid))
        manifest = {"run_id": rid, "source": "witness", "pipeline_version": "0.1.0",
                    "now": f"{date}T23:59:00+00:00", "logical_date": date, "runner": "direct",
                    "rules": {"witness": "witness-1.0"},
                    "inputs": [{"uri": f"gs://poc/witness/{date}/reports-{rid}.jsonl.gz",
                                "kind": "witness", "sha256": _sha("in", date), "bytes": 1000,
                                "records": n_witness + 5, "parsed": n_witness, "quarantined": 5,
                                "blank_lines": 0, "error": None}],
                    "outputs": [{"table": "witness", "date": date, "path": f"witness/date={date}/part-0000.parquet",
                                 "rows": n_witness, "bytes": 1, "sha256": _sha("out", date)}],
                    "counts": {"by_table": {"witness": {"valid": 1, "invalid": 1}}},
                    "accounting": {"ok": True}, "timings": {"total_s": 1.5}}
        with open(os.path.join(out, "_runs", f"{rid}.json"), "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
    # things readers must never look at
    os.makedirs(os.path.join(out, "witness", "_staging", "date=2026-11-20"), exist_ok=True)
    with open(os.path.join(out, "witness", "_staging", "date=2026-11-20", "part-9.parquet"), "wb") as f:
        f.write(b"not parquet")
    os.makedirs(os.path.join(out, "witness", ".tmp"), exist_ok=True)
    with open(os.path.join(out, "_runs", ".partial.json"), "w") as f:
        f.write("{")
    if ledger:
        con = duckdb.connect(os.path.join(out, "_ledger.duckdb"))
        con.execute("CREATE TABLE ledger (uri VARCHAR, size BIGINT, sha256 VARCHAR, source VARCHAR, "
                    "run_id VARCHAR, status VARCHAR, records BIGINT, committed_at TIMESTAMPTZ)")
        for date in DATES:
            con.execute("INSERT INTO ledger VALUES (?, 1000, ?, 'witness', ?, 'committed', ?, ?)",
                        [f"gs://poc/witness/{date}/reports-run-{date}.jsonl.gz", _sha("in", date),
                         f"run-{date}", n_witness + 5, dt.datetime.fromisoformat(date + "T23:59:00+00:00")])
        con.close()
    return out
