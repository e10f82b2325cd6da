"""Shared benchmark harness: where things are, how to call hexsieve, and a
runner that measures wall time and peak RSS of a command's whole process tree
(per process and summed), sampling with psutil."""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = sys.executable
HX = [PY, "-m", "pipelines.cli"]          # the hexsieve CLI, run from ROOT
# Beam flags of the per-record baselines: the same local engine and parallelism
# as hexsieve's default mode (Beam's own DirectRunner would try Prism first).
PER_RECORD_BEAM = ["--runner=pipelines.local_runner.LocalDirectRunner", "--direct_num_workers=2",
                   "--direct_running_mode=multi_threading"]
NOW = "2026-11-21T00:00:00Z"              # processing time matching the generators' sample day
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def run(cmd: list[str], env=None, cwd=None) -> dict:
    # Every timed run starts with no dirty pages left by the one before:
    # otherwise the kernel writes the previous run's output back to disk
    # during this one (a 2-worker Dask run measured 13.3 s right after the
    # floor and the direct runs, 11.6–11.8 s on its own; with the sync,
    # 11.6–12.4 s inside the bench).
    os.sync()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd, text=True)
    peak_proc: dict[int, int] = {}
    peak_total = [0]
    stop = threading.Event()

    def sample():
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                procs = [root] + root.children(recursive=True)
                total = 0
                for p in procs:
                    try:
                        rss = p.memory_info().rss
                    except psutil.Error:
                        continue
                    total += rss
                    peak_proc[p.pid] = max(peak_proc.get(p.pid, 0), rss)
                peak_total[0] = max(peak_total[0], total)
            except psutil.Error:
                pass
            stop.wait(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    stop.set()
    th.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}… failed ({proc.returncode}):\n{err[-3000:]}")
    return {"wall_s": wall, "peak_rss_total_mb": peak_total[0] / 2**20,
            "peak_rss_max_proc_mb": max(peak_proc.values(), default=0) / 2**20,
            "peak_rss_per_proc_mb": sorted((v / 2**20 for v in peak_proc.values()), reverse=True)[:6],
            "stdout": out, "stderr": err}


def run_fresh(out: str, cmd: list[str]) -> dict:
    """`run(cmd)` into an empty `out`, as every hexsieve run gets."""
    shutil.rmtree(out, ignore_errors=True)
    return run(cmd, cwd=ROOT)


def run_hexsieve(args: list[str], out: str) -> dict:
    """`hexsieve <args> --out OUT` from a clean OUT, measured by `run`, plus
    what its run manifest says: input records, pipeline seconds, counts."""
    shutil.rmtree(out, ignore_errors=True)
    r = run(HX + args + ["--out", out, "--now", NOW, "--quiet"], cwd=ROOT)
    (manifest,) = glob.glob(os.path.join(out, "_runs", "*.json"))
    with open(manifest) as f:
        doc = json.load(f)
    r["records"] = sum(f["records"] for f in doc["accounting"]["files"])
    r["pipeline_s"] = doc["timings"]["pipeline_s"]
    r["counts"] = doc["counts"]
    return r


def summarize(runs: list[dict]) -> dict:
    """The run with the median wall time, with every wall time (`walls_s`,
    in the order run) and the highest peak RSS of any run.

    Back-to-back runs of the 2M-record witness job differ by up to ~1.5 s
    (12–14 s runs on 2026-12-03), enough to flip a ratio around its target;
    the median of three does not hang on one lucky or unlucky run, and the
    peak RSS stays the worst seen. Slower drift is what the rounds are for
    (see round_robin)."""
    ordered = sorted(runs, key=lambda r: r["wall_s"])
    r = dict(ordered[len(ordered) // 2])
    r["walls_s"] = [round(x["wall_s"], 2) for x in runs]
    for k in ("peak_rss_total_mb", "peak_rss_max_proc_mb"):
        r[k] = max(x[k] for x in runs)
    r["peak_rss_per_proc_mb"] = max((x["peak_rss_per_proc_mb"] for x in runs), key=lambda v: v[:1])
    return r


def round_robin(n: int, measures: dict, progress=None) -> dict[str, dict]:
    """Run every `measures[name]()` once per round, n rounds; each name's
    runs summarized as by `summarize`.

    Rounds, not one mode's runs back to back: this host's speed drifts by
    tens of percent over a bench (on 2026-12-03 the same 2M-row direct run
    took 15–17 s in one hour and 28–29 s in the next), so modes measured in
    separate blocks of time compared the host's moods as much as the code.
    Interleaved, a ratio compares runs made minutes apart."""
    runs: dict[str, list[dict]] = {name: [] for name in measures}
    for i in range(max(1, n)):
        for name, measure_once in measures.items():
            r = measure_once()
            runs[name].append(r)
            if progress:
                progress(f"round {i + 1}/{n}: {name} {r['wall_s']:.2f} s")
    return {name: summarize(rs) for name, rs in runs.items()}


def timed_rounds(n: int, measures: dict, root: str) -> tuple[dict[str, dict], dict]:
    """`round_robin` between two readings of the host's fresh-page cost
    (printed as they come, and returned for the results file)."""
    host = {"before": fresh_page_cost(root=root)}
    print(f"host fresh-page cost before: {host['before']}", flush=True)
    summary = round_robin(n, measures, progress=lambda m: print("  " + m, flush=True))
    host["after"] = fresh_page_cost(root=root)
    print(f"host fresh-page cost after:  {host['after']}  (CPU s per GiB written into new page-cache pages)")
    return summary, host


def fresh_page_cost(mib: int = 512, idle_s: float = 5.0, root: str | None = None) -> dict:
    """CPU seconds per GiB to write new files into the page cache, after
    `idle_s` of rest ("cold") and again at once ("warm").

    On this VM (virtio_balloon, free page reporting) memory the guest freed
    and left idle for a few seconds goes back to the host, and touching it
    again costs ~3 s of CPU per GiB instead of ~0.3 s. Every hexsieve run
    writes ~1.2 GB (shuffle shards and Parquet) and the floor ~0.4 GB, so
    the bench records this figure beside its rates: it explains much of the
    system time and of the swings between benches."""
    import tempfile
    block = os.urandom(1 << 20) * 32  # 32 MiB per file
    d = tempfile.mkdtemp(prefix="hexsieve-pagecost-", dir=root)

    n_files = max(1, mib // 32)

    def once() -> float:
        t = time.process_time()
        for i in range(n_files):
            with open(os.path.join(d, f"f{i}"), "wb") as f:
                f.write(block)
        cost = (time.process_time() - t) * 1024 / (32 * n_files)
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))
        return cost
    try:
        time.sleep(idle_s)
        cold = once()
        warm = once()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return {"cold_cpu_s_per_gib": round(cold, 2), "warm_cpu_s_per_gib": round(warm, 2)}


def reporter(results: dict, unit: str = "rows", width: int = 34):
    """`report(name, r, rows)`: record a measured run `r` in `results` under
    `name` with its row count and rate, and print one aligned line."""
    def report(name: str, r: dict, rows: int) -> None:
        r["rows"] = rows
        r["rows_per_s"] = rows / r["wall_s"]
        results[name] = r
        print(f"{name:{width}s} {rows:>11,} {unit} {r['wall_s']:8.2f} s {r['rows_per_s']:>11,.0f} {unit}/s  "
              f"peak RSS {r['peak_rss_total_mb']:7.0f} MB total, {r['peak_rss_max_proc_mb']:6.0f} MB max/process"
              + (f"  (median of {len(r['walls_s'])}: {', '.join(f'{w:.2f}' for w in r['walls_s'])} s)"
                 if len(r.get("walls_s", ())) > 1 else ""),
              flush=True)
    return report


def save_results(path: str, results: dict) -> None:
    """Results as JSON, without the commands' captured output."""
    with open(path, "w") as f:
        json.dump({k: {kk: vv for kk, vv in v.items() if kk not in ("stdout", "stderr")}
                   for k, v in results.items()}, f, indent=2)
