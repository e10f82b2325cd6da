"""Shared helpers for the scheduled-run tests: a landing area laid out by
date, a hexsieve.toml pointing at it, and ways to read outputs back."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone

import duckdb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEXSIEVE = os.path.join(ROOT, ".venv", "bin", "hexsieve")
if not os.path.exists(HEXSIEVE):
    HEXSIEVE = os.path.join(os.path.dirname(sys.executable), "hexsieve")
NOW = "2026-11-21T00:00:00Z"
NOW_DT = datetime(2026, 11, 21, tzinfo=timezone.utc)
D1 = "2026-11-20"
D2 = "2026-11-21"

_CACHE: dict = {}


def generated(rows: int = 600, seed: int = 7) -> str:
    """Generated witness inputs, made once per test session and copied from."""
    from pipelines.generate.witness import generate
    key = (rows, seed)
    if key not in _CACHE:
        import tempfile
        import atexit
        d = tempfile.mkdtemp(prefix=f"hexsieve-gen-{rows}-{seed}-")
        atexit.register(shutil.rmtree, d, True)
        generate(d, rows=rows, seed=seed, files=2)
        _CACHE[key] = d
    return _CACHE[key]


def landing(base: str, day: str = D1, rows: int = 600, seed: int = 7) -> str:
    """Copy generated inputs into base/landing/witness/<day>/ and the
    reference tables into base/reference/ (once). Returns the day folder."""
    src = generated(rows, seed)
    ddir = os.path.join(base, "landing", "witness", day)
    os.makedirs(ddir, exist_ok=True)
    ref = os.path.join(base, "reference")
    os.makedirs(ref, exist_ok=True)
    for n in os.listdir(src):
        if n.startswith(("beacons-", "witnesses-")):
            shutil.copy(os.path.join(src, n), os.path.join(ddir, n))
        elif not os.path.exists(os.path.join(ref, n)):
            shutil.copy(os.path.join(src, n), os.path.join(ref, n))
    return ddir


def write_config(base: str, out: str | None = None, extra: str = "", registry: str = "reference/registry.csv",
                 witness_globs: str = '["landing/witness/{date}/witnesses-*.jsonl"]',
                 name: str = "hexsieve.toml") -> str:
    out = out or os.path.join(base, "out")
    cfg = os.path.join(base, name)
    with open(cfg, "w") as f:
        f.write(f'''[output]
root = "{out}"

[beam]
runner = "direct"
args = ["--direct_num_workers=2"]

[sources.witness]
beacons = ["landing/witness/{{date}}/beacons-*.jsonl.gz"]
witnesses = {witness_globs}
registry = "{registry}"
denylist = "reference/denylist.csv"
entropy = "reference/entropy.jsonl"
{extra}
''')
    return cfg


def run_inproc(cfg_path: str, day: str = D1, **kw):
    """One scheduled run in this process (what `hexsieve run` does, minus the CLI)."""
    from pipelines.config import load, parse_date
    from pipelines.schedule import run_source
    cfg = load(cfg_path)
    return run_source(cfg, cfg.sources["witness"], parse_date(day), now=kw.pop("now", NOW_DT), **kw)


def cli(args: list[str], env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([HEXSIEVE, *args], capture_output=True, text=True, env=e, timeout=timeout)


def cli_inproc(args: list[str], capsys) -> tuple[int, str, str]:
    """The real CLI entry point in this process: (exit code, stdout, stderr)."""
    from pipelines.cli import main
    code = 0
    try:
        main(args)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def rows(out: str, table: str, exclude: tuple[str, ...] = ()) -> list[tuple]:
    """Every row of a table (hive date included), ordered, as tuples."""
    pat = os.path.join(out, table, "*", "*.parquet")
    import glob
    if not glob.glob(pat):
        return []
    con = duckdb.connect()
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{pat}', hive_partitioning=true)").fetchall()]
    keep = [c for c in cols if c not in exclude]
    sel = ", ".join(f'"{c}"' for c in keep)
    order = "record_sha256, source_uri, source_record, date"
    return con.execute(f"SELECT {sel} FROM read_parquet('{pat}', hive_partitioning=true) ORDER BY {order}").fetchall()


def file_hashes(out: str) -> dict[str, str]:
    res = {}
    for d, _, names in os.walk(out):
        for n in names:
            if n.endswith(".parquet"):
                p = os.path.join(d, n)
                res[os.path.relpath(p, out)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return res


def manifests(out: str) -> dict[str, dict]:
    d = os.path.join(out, "_runs")
    return {n: json.load(open(os.path.join(d, n))) for n in sorted(os.listdir(d)) if n.endswith(".json")} \
        if os.path.isdir(d) else {}


def leftovers(out: str) -> list[str]:
    """Temporary state a finished run must not leave: staging, tmp files, stale locks."""
    bad = []
    for d, dirs, names in os.walk(out):
        rel = os.path.relpath(d, out)
        if rel.startswith("_staging"):
            bad.append(rel)
        for n in names:
            if ".tmp-" in n or (rel == "_locks" and n != "commit.lock"):
                bad.append(os.path.join(rel, n))
    return bad
