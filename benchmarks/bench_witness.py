"""`make bench`: witness pipeline throughput and memory against a floor and a
per-record Beam pipeline, and on the DaskRunner with 1 and 2 local workers.

All three read the same files (beacons .gz and witnesses JSONL) and rates
are input records per second (witness rows + beacons). Timed modes run in
rounds (every mode once per round, see measure.round_robin) and each mode's
median is reported; the host's fresh-page cost is measured before and after
(measure.fresh_page_cost), since it moves every mode's speed.

Targets (issue #2/#8): hexsieve ≥ 0.8× floor, ≥ 6× per-record; peak RSS <
1.5 GB at 10M rows; DaskRunner scaling efficiency ≥ 0.8 at 2 workers."""
from __future__ import annotations

import argparse
import os
import shutil

from measure import (HERE, HX, PER_RECORD_BEAM, PY, ROOT, reporter, run, run_fresh, run_hexsieve, save_results,
                     timed_rounds)


def ensure_data(rows: int, files: int, root: str) -> str:
    d = os.path.join(root, f"data-{rows}")
    if not os.path.exists(os.path.join(d, "registry.csv")):
        shutil.rmtree(d, ignore_errors=True)
        print(f"generating {rows:,} witness reports into {d} …", flush=True)
        run(HX + ["generate", "witness", "--rows", str(rows), "--files", str(files), "--out", d], cwd=ROOT)
    return d


def input_records(d: str) -> int:
    """Non-blank lines of every input file, beacons (.gz) and witnesses: the
    records all three pipelines read, so rows/s are comparable."""
    import gzip
    n = 0
    for name in os.listdir(d):
        if name.startswith(("witnesses-", "beacons-")):
            with (gzip.open if name.endswith(".gz") else open)(os.path.join(d, name), "rb") as f:
                n += sum(1 for line in f if line.strip())
    return n


def hexsieve(d: str, out: str, extra: list[str]) -> dict:
    return run_hexsieve(["batch", "witness", "--beacons", f"{d}/beacons-*.jsonl.gz",
                         "--witnesses", f"{d}/witnesses-*.jsonl", "--registry", f"{d}/registry.csv",
                         "--denylist", f"{d}/denylist.csv", "--entropy", f"{d}/entropy.jsonl", *extra], out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--root", default=os.path.join(ROOT, "bench_out"))
    ap.add_argument("--memory-rows", type=int, default=10_000_000, help="rows for the peak-RSS run (0 = skip)")
    ap.add_argument("--skip", default="", help="comma list of: floor,per_record,dask,memory,modes")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each timed mode; the median is reported (the 10M-row memory run is run once)")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    os.makedirs(a.root, exist_ok=True)
    d = ensure_data(a.rows, a.files, a.root)
    n_w = input_records(d)
    results: dict[str, dict] = {}

    report = reporter(results, "records")

    modes = {"hexsieve direct (2 threads)": [],
             "hexsieve direct (1 worker)": ["--direct_num_workers=1"]}
    if "modes" not in skip:
        modes["hexsieve direct (2 processes)"] = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    measures = {name: (lambda extra=extra: hexsieve(d, os.path.join(a.root, "out-hexsieve"), extra))
                for name, extra in modes.items()}
    # The baselines read the same inputs as hexsieve (without denylist and entropy).
    inputs = ["--witnesses", f"{d}/witnesses-*.jsonl", "--beacons", f"{d}/beacons-*.jsonl.gz",
              "--registry", f"{d}/registry.csv"]
    if "floor" not in skip:
        out_f = os.path.join(a.root, "out-floor")
        measures["floor (pyarrow only, no Beam)"] = lambda: run_fresh(out_f, [
            PY, os.path.join(HERE, "floor_witness.py"), *inputs, "--out", out_f])
    if "per_record" not in skip:
        out_p = os.path.join(a.root, "out-per-record")
        measures["per-record Beam (dict per record)"] = lambda: run_fresh(out_p, [
            PY, os.path.join(HERE, "per_record_witness.py"), *inputs, "--out", out_p, *PER_RECORD_BEAM])
    if "dask" not in skip:
        for w in (1, 2):
            measures[f"hexsieve dask ({w} worker{'s' if w > 1 else ''})"] = (
                lambda w=w: hexsieve(d, os.path.join(a.root, "out-dask"), ["--runner", "dask", "--dask-workers", str(w)]))
    summary, host = timed_rounds(a.repeat, measures, a.root)
    for name, r in summary.items():
        report(name, r, n_w)
    best_name = max((k for k in results if k.startswith("hexsieve direct")), key=lambda k: results[k]["rows_per_s"])
    best = results[best_name]
    print()
    print(f"best DirectRunner mode: {best_name}")
    if "floor (pyarrow only, no Beam)" in results:
        print(f"hexsieve / floor        = {best['rows_per_s'] / results['floor (pyarrow only, no Beam)']['rows_per_s']:.2f}  (target ≥ 0.8)")
    if "per-record Beam (dict per record)" in results:
        print(f"hexsieve / per-record   = {best['rows_per_s'] / results['per-record Beam (dict per record)']['rows_per_s']:.2f}  (target ≥ 6)")
    if "hexsieve dask (2 workers)" in results:
        r1, r2 = results["hexsieve dask (1 worker)"]["rows_per_s"], results["hexsieve dask (2 workers)"]["rows_per_s"]
        print(f"dask scaling efficiency = {r2 / (2 * r1):.2f}  (rows/s at 2 workers ÷ 2 × rows/s at 1; target ≥ 0.8)")
        print(f"dask 2 workers / best direct = {r2 / best['rows_per_s']:.2f}  (target ≥ 1.0)")
        # The same runs' pipeline phase alone (the manifests' pipeline_s):
        # what start-up and commit cost the ratio above, and what a longer
        # run, where they weigh less, would approach.
        p1, p2 = results["hexsieve dask (1 worker)"]["pipeline_s"], results["hexsieve dask (2 workers)"]["pipeline_s"]
        print(f"  pipeline phase only: {p1:.2f} s at 1 worker, {p2:.2f} s at 2, efficiency {p1 / (2 * p2):.2f} "
              f"(start-up and commit excluded)")
        for w in (1, 2):
            print(f"  dask {w} worker peak RSS per process (MB): "
                  f"{[round(x) for x in results[f'hexsieve dask ({w} worker' + ('s' if w > 1 else '') + ')']['peak_rss_per_proc_mb']]}")
    if a.memory_rows and "memory" not in skip:
        dm = ensure_data(a.memory_rows, max(a.files, a.memory_rows // 125_000), a.root)
        r = hexsieve(dm, os.path.join(a.root, "out-memory"), [])
        nm = input_records(dm)
        report(f"hexsieve direct at {nm / 1e6:.1f}M rows", r, nm)
        print(f"peak RSS at {nm:,} input records: {r['peak_rss_total_mb']:.0f} MB (target < 1536 MB)")
    save_results(os.path.join(a.root, "bench_witness.json"), {**results, "host fresh-page cost": host})


if __name__ == "__main__":
    main()
