"""Benchmark: region export and the coverage query over N synthetic witness rows.

    python benchmarks/bench_export.py --rows 10000000

Rows are generated with numpy only (no per-row Python), in the published
layout (OUT/witness/date=D/part-*.parquet, zstd), around Berlin: hotspots
are H3 res-12 cells, record_sha256 values are random 64-hex strings.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time

import h3.api.basic_int as h3i
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipelines import sqlviews  # noqa: E402
from pipelines.export import ExportOptions, export  # noqa: E402
from schemas.witness import WITNESS_OUT  # noqa: E402

BOX = (52.33, 52.68, 13.08, 13.76)
REASONS = ["stale", "bad_rssi", "below_min_distance", "denied_edge", "too_late"]
REGION = {"type": "Polygon", "coordinates": [
    [[13.20, 52.42], [13.58, 52.40], [13.62, 52.58], [13.28, 52.62], [13.20, 52.42]],
    [[13.36, 52.49], [13.44, 52.49], [13.44, 52.53], [13.36, 52.53], [13.36, 52.49]]]}
COLUMNS = ["pub_key", "timestamp", "signal", "snr", "frequency", "received_timestamp",
           "beaconer_cell", "witness_cell", "distance_m", "verdict", "reasons", "source_uri",
           "source_record", "source_sha256", "record_sha256", "run_id", "pipeline_version",
           "rules_version", "ingested_at"]
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def hex_strings(rng, n: int) -> pa.Array:
    raw = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    chars = np.empty((n, 64), np.uint8)
    chars[:, 0::2] = _HEX[raw >> 4]
    chars[:, 1::2] = _HEX[raw & 15]
    offsets = np.arange(0, 64 * n + 1, 64, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()))


def dict_strings(idx: np.ndarray, values: list[str]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(idx.astype(np.int32)), pa.array(values)).cast(pa.string())


def day_table(rng, n: int, date: str, hotspots: np.ndarray, keys: list[str]) -> pa.Table:
    t0 = int(dt.datetime.fromisoformat(date + "T00:00:00+00:00").timestamp() * 1000)
    idx = rng.integers(0, len(hotspots), n)
    rts = t0 + np.sort(rng.integers(0, 86_400_000, n))
    bad = rng.random(n) < 0.3
    reason_idx = rng.integers(0, len(REASONS), int(bad.sum()))
    offsets = np.concatenate([[0], np.cumsum(bad)]).astype(np.int32)
    reasons = pa.ListArray.from_arrays(pa.array(offsets), dict_strings(reason_idx, REASONS))
    files = [f"gs://poc/witness/{date}/reports-{k:02d}.jsonl.gz" for k in range(8)]
    file_idx = np.sort(rng.integers(0, len(files), n))
    run = f"bench-{date}"
    cols = {
        "pub_key": dict_strings(idx, keys),
        "timestamp": pa.array(rts * 1_000_000), "signal": pa.array(rng.integers(-1300, -600, n).astype(np.int32)),
        "snr": pa.array(rng.integers(-200, 100, n).astype(np.int32)),
        "frequency": pa.array(np.full(n, 867_100_000, np.uint64)), "received_timestamp": pa.array(rts),
        "beaconer_cell": pa.array(hotspots[rng.integers(0, len(hotspots), n)]),
        "witness_cell": pa.array(hotspots[idx]),
        "distance_m": pa.array(rng.integers(100, 20000, n)),
        "verdict": dict_strings(bad.astype(np.int32), ["valid", "invalid"]),
        "reasons": reasons,
        "source_uri": dict_strings(file_idx, files),
        "source_record": pa.array(np.arange(1, n + 1)),
        "source_sha256": dict_strings(file_idx, [f"{k:064x}" for k in range(len(files))]),
        "record_sha256": hex_strings(rng, n),
        "run_id": dict_strings(np.zeros(n, np.int32), [run]),
        "pipeline_version": dict_strings(np.zeros(n, np.int32), ["0.1.0"]),
        "rules_version": dict_strings(np.zeros(n, np.int32), ["witness-1.0.0"]),
        "ingested_at": pa.array(np.full(n, t0 * 1000 + 86_400_000_000, "datetime64[us]")).cast(
            pa.timestamp("us", tz="UTC")),
    }
    schema = pa.schema([WITNESS_OUT.field(c) for c in COLUMNS])
    return pa.Table.from_arrays([cols[c].cast(schema.field(c).type) for c in COLUMNS], schema=schema)


def generate(out: str, rows: int, days: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    n_hot = 200_000
    lat = rng.uniform(BOX[0], BOX[1], n_hot)
    lng = rng.uniform(BOX[2], BOX[3], n_hot)
    hotspots = np.array([h3i.latlng_to_cell(a, b, 12) for a, b in zip(lat.tolist(), lng.tolist())], np.uint64)
    keys = [f"112hotspot{k:07d}" for k in range(n_hot)]
    os.makedirs(os.path.join(out, "_runs"), exist_ok=True)
    start = dt.date(2026, 11, 1)
    per_day = [rows // days + (1 if i < rows % days else 0) for i in range(days)]
    for i, n in enumerate(per_day):
        date = (start + dt.timedelta(days=i)).isoformat()
        d = os.path.join(out, "witness", f"date={date}")
        os.makedirs(d, exist_ok=True)
        pq.write_table(day_table(rng, n, date, hotspots, keys), os.path.join(d, "part-0000.parquet"),
                       compression="zstd", row_group_size=262_144)
        with open(os.path.join(out, "_runs", f"bench-{date}.json"), "w") as f:
            json.dump({"run_id": f"bench-{date}", "source": "witness", "pipeline_version": "0.1.0",
                       "now": f"{date}T23:59:00+00:00", "inputs": [], "outputs": [], "counts": {}}, f)


COVERAGE = """
WITH cells AS (
    SELECT date, h3_cell_to_parent(witness_cell, 8) AS hex8, pub_key, verdict
    FROM witness WHERE witness_cell <> 0
)
SELECT date, h3_cell_to_string(hex8) AS hex8, count(DISTINCT pub_key) AS hotspots,
       count(*) FILTER (WHERE verdict = 'valid') AS valid_witnesses
FROM cells GROUP BY date, hex8 ORDER BY date, valid_witnesses DESC, hex8
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--dir", help="work directory (default: a temp dir, removed afterwards)")
    ap.add_argument("--keep", action="store_true", help="keep the generated data and bundle")
    a = ap.parse_args()
    work = a.dir or tempfile.mkdtemp(prefix="hexsieve-bench-")
    out, bundle = os.path.join(work, "OUT"), os.path.join(work, "bundle")
    try:
        if not os.path.exists(os.path.join(out, "witness")):
            t = time.perf_counter()
            generate(out, a.rows, a.days)
            print(f"generate {a.rows:,} rows: {time.perf_counter() - t:.1f} s")
        shutil.rmtree(bundle, ignore_errors=True)
        region = os.path.join(work, "region.geojson")
        with open(region, "w") as f:
            json.dump(REGION, f)

        t = time.perf_counter()
        con, _ = sqlviews.connect(out)
        rows = con.execute(COVERAGE).fetchall()
        t_cov = time.perf_counter() - t
        print(f"coverage query (res-8 hex per day): {len(rows):,} groups in {t_cov:.2f} s")
        t = time.perf_counter()
        n = con.execute("SELECT count(*) FROM witness WHERE date = DATE '2026-11-03'").fetchall()[0][0]
        print(f"one-date count (pruned): {n:,} rows in {time.perf_counter() - t:.3f} s")
        con.close()

        t = time.perf_counter()
        m = export(ExportOptions(out=out, dataset="witness", to=bundle, region=region, valid_only=True))
        t_exp = time.perf_counter() - t
        r = m["query"]["region"]
        print(f"region export: {m['counts']['exported_rows']:,} of {m['counts']['window_rows']:,} rows "
              f"in {t_exp:.1f} s (H3 res {r['h3_resolution']}, {r['interior_cells']} interior + "
              f"{r['boundary_cells']} boundary cells, {r['boundary_points_tested']} points tested)")
        t = time.perf_counter()
        from pipelines.bundle_verify import verify
        verify(bundle)
        print(f"verify bundle: {time.perf_counter() - t:.1f} s")
    finally:
        if not a.keep and not a.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
