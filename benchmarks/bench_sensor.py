"""Sensor pipeline throughput and memory against a floor (pyarrow read, one
H3 cell per row, Parquet write; no Beam) and a per-record Beam pipeline
(json.loads per line, dict per record).

    .venv/bin/python benchmarks/bench_sensor.py [--rows 2000000] [--files 16]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import time

from measure import HERE, HX, PER_RECORD_BEAM, PY, ROOT, reporter, run, run_hexsieve, save_results


def ensure_data(rows: int, files: int, root: str) -> str:
    d = os.path.join(root, f"sensor-{rows}-{files}")
    if not os.path.exists(os.path.join(d, "stations.csv")):
        shutil.rmtree(d, ignore_errors=True)
        t0 = time.perf_counter()
        r = run(HX + ["generate", "sensor", "--rows", str(rows), "--files", str(files), "--out", d], cwd=ROOT)
        print(r["stdout"].strip(), f"({time.perf_counter() - t0:.1f} s)", flush=True)
    return d


def hexsieve(d: str, out: str, extra: list[str]) -> dict:
    return run_hexsieve(["batch", "sensor", "--readings", f"{d}/readings-*", "--stations", f"{d}/stations.csv",
                         *extra], out)


def jsonl_records(d: str) -> int:
    import gzip
    n = 0
    for f in glob.glob(f"{d}/readings-*.jsonl*"):
        opener = gzip.open if f.endswith(".gz") else open
        with opener(f, "rb") as fh:
            n += sum(1 for line in fh if line.strip())
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--root", default=os.path.join(ROOT, "bench_out"))
    ap.add_argument("--skip", default="", help="comma list of: floor,per_record,modes")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    os.makedirs(a.root, exist_ok=True)
    d = ensure_data(a.rows, a.files, a.root)
    results: dict[str, dict] = {}

    report = reporter(results)

    modes = {"hexsieve direct (2 threads)": []}
    if "modes" not in skip:
        modes["hexsieve direct (1 worker)"] = ["--direct_num_workers=1"]
        modes["hexsieve direct (2 processes)"] = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    n = None
    for name, extra in modes.items():
        r = hexsieve(d, os.path.join(a.root, "out-sensor"), extra)
        n = r["records"]
        report(name, r, n)
    best_name = max(results, key=lambda k: results[k]["rows_per_s"])
    best = results[best_name]
    print("  sensor reasons:", json.dumps(best["counts"]["reasons"].get("sensor", {})))
    print("  daily:", json.dumps(best["counts"]["by_table"].get("sensor_daily", {})),
          json.dumps(best["counts"]["reasons"].get("sensor_daily", {})))
    if "floor" not in skip:
        out = os.path.join(a.root, "out-sensor-floor")
        shutil.rmtree(out, ignore_errors=True)
        r = run([PY, os.path.join(HERE, "floor_sensor.py"), "--readings", f"{d}/readings-*",
                 "--stations", f"{d}/stations.csv", "--out", out], cwd=ROOT)
        report("floor (pyarrow only, no Beam)", r, int(r["stdout"].strip()))
    if "per_record" not in skip:
        out = os.path.join(a.root, "out-sensor-per-record")
        shutil.rmtree(out, ignore_errors=True)
        r = run([PY, os.path.join(HERE, "per_record_sensor.py"), "--readings", f"{d}/readings-*.jsonl*",
                 "--stations", f"{d}/stations.csv", "--out", out, *PER_RECORD_BEAM], cwd=ROOT)
        report("per-record Beam (dict per record)", r, jsonl_records(d))
    print()
    print(f"best DirectRunner mode: {best_name}")
    fl = results.get("floor (pyarrow only, no Beam)")
    pr = results.get("per-record Beam (dict per record)")
    if fl:
        print(f"hexsieve / floor      = {best['rows_per_s'] / fl['rows_per_s']:.2f}")
    if pr:
        print(f"hexsieve / per-record = {best['rows_per_s'] / pr['rows_per_s']:.2f}")
    save_results(os.path.join(a.root, "bench_sensor.json"), results)


if __name__ == "__main__":
    main()
