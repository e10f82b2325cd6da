"""Sensor pipeline throughput and memory against a floor (pyarrow read, one
H3 cell per row, Parquet write; no Beam) and a per-record Beam pipeline
(json.loads per line, dict per record). Timed modes run in rounds, as in
bench_witness.py (see measure.round_robin).

    .venv/bin/python benchmarks/bench_sensor.py [--rows 2000000] [--files 16]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import time

from measure import (HERE, HX, PER_RECORD_BEAM, PY, ROOT, reporter, run, run_fresh, run_hexsieve, save_results,
                     timed_rounds)

FLOOR = "floor (pyarrow only, no Beam)"
PER_RECORD = "per-record Beam (dict per record)"


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
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds: every timed mode runs once per round, and its median run is reported")
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
    measures = {name: (lambda extra=extra: hexsieve(d, os.path.join(a.root, "out-sensor"), extra))
                for name, extra in modes.items()}
    if "floor" not in skip:
        out_f = os.path.join(a.root, "out-sensor-floor")
        measures[FLOOR] = lambda: run_fresh(out_f, [PY, os.path.join(HERE, "floor_sensor.py"), "--readings",
                                                    f"{d}/readings-*", "--stations", f"{d}/stations.csv",
                                                    "--out", out_f])
    if "per_record" not in skip:
        out_p = os.path.join(a.root, "out-sensor-per-record")
        measures[PER_RECORD] = lambda: run_fresh(out_p, [PY, os.path.join(HERE, "per_record_sensor.py"),
                                                         "--readings", f"{d}/readings-*.jsonl*",
                                                         "--stations", f"{d}/stations.csv", "--out", out_p,
                                                         *PER_RECORD_BEAM])
    summary, host = timed_rounds(a.repeat, measures, a.root)
    for name, r in summary.items():
        # Each rate counts what that pipeline reads: hexsieve every record,
        # the floor the rows it wrote, per-record Beam the JSON Lines records.
        rows = (r["records"] if name in modes else int(r["stdout"].strip()) if name == FLOOR
                else jsonl_records(d))
        report(name, r, rows)
    best_name = max(modes, key=lambda k: results[k]["rows_per_s"])
    best = results[best_name]
    print("  sensor reasons:", json.dumps(best["counts"]["reasons"].get("sensor", {})))
    print("  daily:", json.dumps(best["counts"]["by_table"].get("sensor_daily", {})),
          json.dumps(best["counts"]["reasons"].get("sensor_daily", {})))
    print()
    print(f"best DirectRunner mode: {best_name}")
    if FLOOR in results:
        print(f"hexsieve / floor      = {best['rows_per_s'] / results[FLOOR]['rows_per_s']:.2f}")
    if PER_RECORD in results:
        print(f"hexsieve / per-record = {best['rows_per_s'] / results[PER_RECORD]['rows_per_s']:.2f}")
    save_results(os.path.join(a.root, "bench_sensor.json"), {**results, "host fresh-page cost": host})


if __name__ == "__main__":
    main()
