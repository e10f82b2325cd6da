"""Latency of `hexsieve stream`: file landing → its rows queryable, at a steady rate.

A live feed is replayed from the sample data: every `--interval` seconds one
beacon file and one witness file land (atomically, by rename) with received
times rewritten to the wall clock, as a real ingestor would write them. A
watcher lists OUT/witness/*/*.parquet every 20 ms and counts rows per source
file; a witness file is "queryable" when all its rows are in published
Parquet (a DuckDB query over the glob would return them). Beacon rows are
not measured: by design they wait for their whole join window (10 min of
event time) so that `witness_count` is final.

With `--neighbours same`, the same process also streams the sensor and
imagery sources (one `hexsieve stream --config`), and every tick lands a
readings file and a frames file beside the witness pair: streams of one
process take turns at Beam (pipelines/stream.py, _ENGINE_LOCK), so this
measures what the witness latency pays for its neighbours. `--neighbours
separate` streams the three sources as three processes (`stream --config
--source X` each) over the same output root and ledger.

    .venv/bin/python benchmarks/bench_stream_latency.py [--seconds 30] [--interval 1.0] [--neighbours same|separate]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict

import numpy as np
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "sample_data", "witness")


def _records(path: str) -> list[dict]:
    op = gzip.open if path.endswith(".gz") else open
    out = []
    for line in op(path, "rb"):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict) and "received_timestamp" in r:
            if "report" in r:
                r = {**r["report"], "received_timestamp": r["received_timestamp"]}
            if "pub_key" in r and "data" in r:
                out.append(r)
    return out


def _lines(path: str) -> list[bytes]:
    return [line for line in open(path, "rb") if line.strip()]


def feed(landing: str, seconds: float, interval: float, landed: dict, stop: threading.Event,
         neighbours: bool = False) -> None:
    beacons = sorted(sum((_records(os.path.join(SAMPLE, f)) for f in sorted(os.listdir(SAMPLE))
                          if f.startswith("beacons-")), []), key=lambda r: r["received_timestamp"])
    wit = defaultdict(list)
    for f in sorted(os.listdir(SAMPLE)):
        if f.startswith("witnesses-"):
            for r in _records(os.path.join(SAMPLE, f)):
                wit[r["data"]].append(r)
    per_tick = max(1, int(round(20 * interval)))  # ≈ 20 beacons/s, ≈ 6 witnesses each
    # Neighbour files: sample lines as they are (their times are old, so they
    # are judged late or stale; the Beam run each micro-batch costs is the point).
    readings = _lines(os.path.join(ROOT, "sample_data", "sensor", "readings-0001.jsonl")) if neighbours else []
    frames = _lines(os.path.join(ROOT, "sample_data", "imagery", "frames-0001.jsonl")) if neighbours else []
    n_r, n_f = max(1, int(round(200 * interval))), max(1, int(round(100 * interval)))
    i = k = 0
    t_next = time.monotonic()
    while not stop.is_set() and i * interval < seconds:
        now_ms = int(time.time() * 1000)
        bs, ws = [], []
        for b in beacons[k:k + per_tick]:
            shift = now_ms - 1500 - b["received_timestamp"]  # received ~1.5 s ago, witnesses after
            bs.append({**b, "received_timestamp": b["received_timestamp"] + shift,
                       "timestamp": b["timestamp"] + shift * 1_000_000})
            for w in wit.get(b["data"], []):
                ws.append({**w, "received_timestamp": w["received_timestamp"] + shift,
                           "timestamp": w["timestamp"] + shift * 1_000_000})
        k = (k + per_tick) % max(1, len(beacons) - per_tick)
        for kind, rows in (("beacons", bs), ("witnesses", ws)):
            name = os.path.join(landing, f"{kind}-{i:05d}.jsonl")
            tmp = os.path.join(landing, f".{kind}-{i:05d}.part")
            with open(tmp, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
            os.rename(tmp, name)
            landed[name] = (time.time(), len(rows), kind)
        for kind, lines, n in (("sensor", readings, n_r), ("imagery", frames, n_f)):
            if not lines:
                continue
            start = (i * n) % max(1, len(lines) - n)
            name = os.path.join(landing, kind, f"{kind}-{i:05d}.jsonl")
            tmp = os.path.join(landing, kind, f".{kind}-{i:05d}.part")
            with open(tmp, "wb") as f:
                f.writelines(lines[start:start + n])
            os.rename(tmp, name)
            landed[name] = (time.time(), n, kind)
        i += 1
        t_next += interval
        time.sleep(max(0.0, t_next - time.monotonic()))


def watch(out: str, seen_rows: dict, first_full: dict, landed: dict, stop: threading.Event) -> None:
    files_seen: set[str] = set()
    while not stop.is_set():
        d = os.path.join(out, "witness")
        for root, _, names in os.walk(d) if os.path.isdir(d) else []:
            for n in names:
                p = os.path.join(root, n)
                if not n.endswith(".parquet") or p in files_seen:
                    continue
                files_seen.add(p)
                t = time.time()
                col = pq.read_table(p, columns=["source_uri"]).column("source_uri").to_pylist()
                for u in set(col):
                    seen_rows[u] += col.count(u)
                    if u in landed and u not in first_full and seen_rows[u] >= landed[u][1]:
                        first_full[u] = t
        time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between landings (one beacon + one witness file)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--neighbours", choices=["same", "separate"], default=None,
                    help="also stream sensor and imagery files, in the same process or in their own (see the docstring)")
    ap.add_argument("--beam-arg", action="append", default=[], help="extra Beam option for the stream (repeatable)")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="hx-stream-bench-")
    landing, out = os.path.join(work, "land"), os.path.join(work, "out")
    os.makedirs(landing)
    if a.neighbours:
        for kind in ("sensor", "imagery"):
            os.makedirs(os.path.join(landing, kind))
        cfg = os.path.join(work, "hexsieve.toml")
        sd = os.path.join(ROOT, "sample_data")
        with open(cfg, "w") as f:
            f.write(f"""[output]\nroot = "{out}"\n
[sources.witness]\nbeacons = ["{landing}/beacons-*"]\nwitnesses = ["{landing}/witnesses-*"]
registry = "{SAMPLE}/registry.csv"\ndenylist = "{SAMPLE}/denylist.csv"\nentropy = "{SAMPLE}/entropy.jsonl"\n
[sources.sensor]\nreadings = ["{landing}/sensor/sensor-*"]\nstations = "{sd}/sensor/stations.csv"\n
[sources.imagery]\nframes = ["{landing}/imagery/imagery-*"]\ndevices = "{sd}/imagery/devices.csv"\n""")
        inputs = [f"--config={cfg}"]
    else:
        inputs = [f"--beacons={landing}/beacons-*", f"--witnesses={landing}/witnesses-*",
                  f"--registry={SAMPLE}/registry.csv", f"--denylist={SAMPLE}/denylist.csv",
                  f"--entropy={SAMPLE}/entropy.jsonl", f"--out={out}"]
    cmd = [sys.executable, "-m", "pipelines.cli", "stream", *inputs, "--poll=0.1s", "--max-delay=0.5s", "--quiet",
           *a.beam_arg]
    cmds = [cmd + [f"--source={s}"] for s in ("witness", "sensor", "imagery")] if a.neighbours == "separate" else [cmd]
    procs = [subprocess.Popen(c, cwd=ROOT) for c in cmds]
    time.sleep(3.0)  # interpreter + Beam import; not part of the steady state
    landed: dict = {}
    seen_rows: dict = defaultdict(int)
    first_full: dict = {}
    stop = threading.Event()
    w = threading.Thread(target=watch, args=(out, seen_rows, first_full, landed, stop), daemon=True)
    w.start()
    feed(landing, a.seconds, a.interval, landed, stop, bool(a.neighbours))
    time.sleep(4 * a.interval + 3)
    stop.set()
    w.join()
    for proc in procs:
        proc.send_signal(2)
    for proc in procs:
        proc.wait(timeout=60)
    lat = np.array([first_full[u] - landed[u][0] for u in landed if landed[u][2] == "witnesses" and u in first_full])
    n_w = sum(1 for u in landed if landed[u][2] == "witnesses")
    # The last witness file waits for a later file to move the watermark: expected unfinished.
    runs = len(os.listdir(os.path.join(out, "_runs")))
    if a.neighbours:
        print(f"neighbours: {sum(1 for v in landed.values() if v[2] == 'sensor')} sensor and "
              f"{sum(1 for v in landed.values() if v[2] == 'imagery')} imagery files landed, streamed in "
              + ("the same process" if a.neighbours == "same" else "their own processes"))
    print(f"witness files landed: {n_w} at one per {a.interval:g} s ({sum(v[1] for v in landed.values() if v[2] == 'witnesses') / a.seconds:,.0f} witness rows/s)")
    print(f"queryable: {len(lat)}/{n_w}; micro-batches committed: {runs}")
    if len(lat):
        print(f"landing → queryable: p50 {np.percentile(lat, 50):.2f} s, p95 {np.percentile(lat, 95):.2f} s, "
              f"max {lat.max():.2f} s")
    if a.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
