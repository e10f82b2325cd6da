"""Imagery pipeline throughput and memory against a floor (pyarrow read, one
H3 cell per row, Parquet write; no Beam) and a per-record Beam pipeline
(json.loads per line, dict per record), on 2M generated frames. Timed modes
run in rounds, as in bench_witness.py (see measure.round_robin).

    .venv/bin/python benchmarks/bench_imagery.py [--rows 2000000] [--files 8] [--skip per_record]
"""
from __future__ import annotations

import argparse
import os
import shutil
import time

from measure import (HERE, HX, PER_RECORD_BEAM, PY, ROOT, reporter, run, run_fresh, run_hexsieve, save_results,
                     timed_rounds)

FLOOR = "floor (pyarrow + H3, no Beam)"
PER_RECORD = "per-record Beam (dict per record)"


def ensure_data(rows: int, files: int, root: str) -> tuple[str, float | None]:
    d = os.path.join(root, f"imagery-{rows}-{files}")
    if os.path.exists(os.path.join(d, "devices.csv")):
        return d, None
    shutil.rmtree(d, ignore_errors=True)
    print(f"generating {rows:,} frames into {d} …", flush=True)
    t0 = time.perf_counter()
    run(HX + ["generate", "imagery", "--rows", str(rows), "--files", str(files), "--out", d], cwd=ROOT)
    dt = time.perf_counter() - t0
    os.sync()  # the fresh files' writeback must not run during the timed runs
    return d, dt


def frames(d: str) -> list[str]:
    return [f"{d}/frames-*", f"{d}/mapillary-*.jsonl"]


def hexsieve(d: str, out: str, extra: list[str]) -> dict:
    args = [x for pat in frames(d) for x in ("--frames", pat)]
    return run_hexsieve(["batch", "imagery", *args, "--devices", f"{d}/devices.csv", *extra], out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--root", default=os.path.join(ROOT, "bench_out"))
    ap.add_argument("--skip", default="", help="comma list of: floor,per_record,one_worker,processes")
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds: every timed mode runs once per round, and its median run is reported")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    os.makedirs(a.root, exist_ok=True)
    d, gen_s = ensure_data(a.rows, a.files, a.root)
    if gen_s is not None:
        print(f"generated in {gen_s:.1f} s (incl. interpreter start)")
    results: dict[str, dict] = {}
    report = reporter(results, width=36)

    modes = {"hexsieve imagery (direct, 2 threads)": []}
    if "one_worker" not in skip:
        modes["hexsieve imagery (direct, 1 worker)"] = ["--direct_num_workers=1"]
    if "processes" not in skip:
        modes["hexsieve imagery (direct, 2 processes)"] = ["--direct_num_workers=2",
                                                           "--direct_running_mode=multi_processing"]
    measures = {name: (lambda extra=extra: hexsieve(d, os.path.join(a.root, "out-imagery"), extra))
                for name, extra in modes.items()}
    frame_args = [x for p in frames(d) for x in ("--frames", p)]
    if "floor" not in skip:
        out_f = os.path.join(a.root, "out-imagery-floor")
        measures[FLOOR] = lambda: run_fresh(out_f, [PY, os.path.join(HERE, "floor_imagery.py"), *frame_args,
                                                    "--out", out_f])
    if "per_record" not in skip:
        out_p = os.path.join(a.root, "out-imagery-per-record")
        measures[PER_RECORD] = lambda: run_fresh(out_p, [PY, os.path.join(HERE, "per_record_imagery.py"),
                                                         *frame_args, "--out", out_p, *PER_RECORD_BEAM])
    summary, host = timed_rounds(a.repeat, measures, a.root)
    n = summary[next(iter(modes))]["records"]  # every mode reads the same frames; the baselines are rated on them
    for name, r in summary.items():
        report(name, r, n)
        if name in modes:
            print(f"    pipeline {r['pipeline_s']:.2f} s; {r['counts']['by_table']}")
    best_name = max(modes, key=lambda k: results[k]["rows_per_s"])
    best = results[best_name]
    print()
    print(f"best hexsieve mode: {best_name}")
    if FLOOR in results:
        print(f"hexsieve / floor      = {best['rows_per_s'] / results[FLOOR]['rows_per_s']:.2f}")
    if PER_RECORD in results:
        print(f"hexsieve / per-record = {best['rows_per_s'] / results[PER_RECORD]['rows_per_s']:.2f}")
    save_results(os.path.join(a.root, "bench_imagery.json"), {**results, "host fresh-page cost": host})


if __name__ == "__main__":
    main()
