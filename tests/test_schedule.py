"""`hexsieve run` as a scheduler calls it: config, idempotent dates, the
ledger's view of changed files, shared partitions across dates, locks,
retention, and a reader that never sees two runs mixed."""
from __future__ import annotations

import os
import threading

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _sched import (D1, D2, NOW, ROOT, cli_inproc, file_hashes, landing, leftovers, rows, run_inproc,
                    write_config)
from pipelines.ledger import Ledger


# --- config -------------------------------------------------------------------
BAD_CONFIGS = {
    "unknown_top_key": ('[output]\nroot = "o"\n[outputs]\nx = 1\n', "unknown key(s) in the top level: outputs"),
    "missing_root": ('[output]\nledger = "l"\n[sources.witness]\n', "missing [output] root"),
    "unknown_source": ('[output]\nroot = "o"\n[sources.lidar]\nx = "y"\n', "unknown source [sources.lidar]"),
    "missing_registry": ('[output]\nroot = "o"\n[sources.witness]\nbeacons = ["b"]\nwitnesses = ["w"]\n',
                         "[sources.witness] is missing registry"),
    "typo_in_source": ('[output]\nroot = "o"\n[sources.witness]\nbeacons = ["b"]\nwitnesses = ["w"]\n'
                       'registry = "r"\ndenylst = "d"\n', "unknown key(s) in [sources.witness]: denylst"),
    "bad_placeholder": ('[output]\nroot = "o"\n[sources.witness]\nbeacons = ["b/{day}/*"]\nwitnesses = ["w"]\n'
                        'registry = "r"\n', "unknown placeholder {day}"),
    "bad_runner": ('[output]\nroot = "o"\n[beam]\nrunner = "flink"\n[sources.witness]\nbeacons = ["b"]\n'
                   'witnesses = ["w"]\nregistry = "r"\n', '[beam] runner must be "direct" or "dask"'),
    "bad_retention": ('[output]\nroot = "o"\n[retention]\ndays = "a week"\n[sources.witness]\nbeacons = ["b"]\n'
                      'witnesses = ["w"]\nregistry = "r"\n', "[retention] days must be a positive integer"),
    "not_toml": ("[output\nroot = 1\n", "not valid TOML"),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_config_errors_are_one_line(tmp_path, capsys, name):
    text, want = BAD_CONFIGS[name]
    cfg = tmp_path / "hexsieve.toml"
    cfg.write_text(text)
    code, out, err = cli_inproc(["run", "--config", str(cfg), "--date", D1], capsys)
    assert code == 2
    assert want in err and str(cfg) in err and len(err.strip().splitlines()) == 1, err


def test_rule_overrides_from_config(tmp_path, capsys):
    base = str(tmp_path)
    landing(base)
    cfg = write_config(base, extra="[rules.witness]\nmax_distance_km = 1\n")
    o = run_inproc(cfg)
    assert o.manifest["rules"]["witness"]["constants"]["max_distance_km"] == 1
    bad = write_config(base, extra="[rules.witness]\nmax_distanse_km = 1\n", name="bad.toml")
    code, _, err = cli_inproc(["run", "--config", bad, "--date", D1], capsys)
    assert code == 1 and "no constant(s) max_distanse_km" in err and len(err.strip().splitlines()) == 1


def test_sample_config(tmp_path):
    from pipelines.config import load, parse_date
    from pipelines.schedule import landing_files
    cfg = load(os.path.join(ROOT, "sample_data", "hexsieve.toml"))
    assert cfg.out == os.path.join(ROOT, "out") and cfg.ledger == os.path.join(ROOT, "out", "_ledger.duckdb")
    assert cfg.sources["witness"].refs["registry"] == os.path.join(ROOT, "sample_data", "witness", "registry.csv")
    files, _ = landing_files(cfg.sources["witness"], parse_date("2026-11-20"))
    assert files["beacon"] and files["witness"]
    assert cfg.retention_days == 400 and cfg.beam.runner == "direct"


def test_date_placeholders():
    from datetime import date
    from pipelines.config import fill
    assert fill("/l/{yyyy}/{mm}/{dd}/x-{date}-*.gz", date(2026, 1, 5)) == "/l/2026/01/05/x-2026-01-05-*.gz"


# --- idempotent dates -------------------------------------------------------------
def test_rerun_is_noop_and_changed_file_is_a_new_version(tmp_path, capsys):
    base = str(tmp_path)
    ddir = landing(base)
    cfg = write_config(base)
    out = os.path.join(base, "out")
    code, o, err = cli_inproc(["run", "--config", cfg, "--date", D1, "--now", NOW], capsys)
    assert code == 0 and "committed witness-2026-11-20-" in o, err
    before = file_hashes(out)
    mtimes = {p: os.path.getmtime(os.path.join(out, p)) for p in before}
    code, o, err = cli_inproc(["run", "--config", cfg, "--date", D1, "--now", NOW], capsys)
    assert code == 0 and "already ingested; nothing to do" in o
    assert file_hashes(out) == before
    assert all(os.path.getmtime(os.path.join(out, p)) == m for p, m in mtimes.items())

    # a landing file rewritten in place (same name, new bytes): the date is re-processed
    w = os.path.join(ddir, "witnesses-0001.jsonl")
    lines = open(w, "rb").read().splitlines(keepends=True)
    open(w, "wb").write(b"".join(lines[:-5]))
    res = run_inproc(cfg)
    assert res.status == "committed"
    led = Ledger(os.path.join(out, "_ledger.duckdb"))
    hist = sorted((r["version"], r["status"]) for r in led.rows(uri=w))
    assert hist == [(1, "superseded"), (2, "committed")]
    new_sha = led.committed(w)["sha256"]
    assert {r for r in duckdb.sql(
        f"SELECT DISTINCT source_sha256 FROM read_parquet('{out}/witness/*/*.parquet') WHERE source_uri = '{w}'"
    ).fetchall()} == {(new_sha,)}
    # identical to a clean run over the current landing files
    ref = write_config(base, out=os.path.join(base, "ref"), name="ref.toml")
    run_inproc(ref)
    for t in ("witness", "beacon", "quarantine"):
        assert rows(out, t, ("run_id",)) == rows(os.path.join(base, "ref"), t, ("run_id",))
    assert leftovers(out) == []


def test_dates_share_partitions_without_clobbering(tmp_path):
    """Landing date ≠ event date: two logical dates write rows into the same
    event-date partition; re-running one keeps the other's rows."""
    base = str(tmp_path)
    landing(base, D1, seed=7)
    landing(base, D2, seed=8)    # event times on 2026-11-20 as well
    cfg = write_config(base)
    out = os.path.join(base, "out")
    a = run_inproc(cfg, D1)
    n1 = len(rows(out, "witness"))
    b = run_inproc(cfg, D2)
    both = rows(out, "witness")
    n2 = sum(1 for r in both) - n1
    assert n2 > 0
    per_run = dict(duckdb.sql(f"SELECT run_id, count(*) FROM read_parquet('{out}/witness/date=2026-11-20/*.parquet') "
                              "GROUP BY ALL").fetchall())
    assert set(per_run) == {a.run_id, b.run_id}
    c = run_inproc(cfg, D1, force=True, now=__import__("datetime").datetime(2026, 11, 22, tzinfo=__import__(
        "datetime").timezone.utc))
    assert c.status == "committed"
    after = rows(out, "witness", ("run_id", "ingested_at"))
    assert after == rows(out, "witness", ("run_id", "ingested_at")) and len(after) == len(both)
    per_run = dict(duckdb.sql(f"SELECT run_id, count(*) FROM read_parquet('{out}/witness/*/*.parquet') "
                              "GROUP BY ALL").fetchall())
    assert per_run == {c.run_id: n1, b.run_id: n2}
    assert sorted(os.listdir(os.path.join(out, "quarantine"))) == [f"date={D1}", f"date={D2}"]


def test_missing_landing_and_removed_file(tmp_path, capsys):
    base = str(tmp_path)
    cfg = write_config(base)
    code, _, err = cli_inproc(["run", "--config", cfg, "--date", D1], capsys)
    assert code == 1 and f"no landing files for witness on {D1}" in err and len(err.strip().splitlines()) == 1
    code, o, _ = cli_inproc(["run", "--config", cfg, "--date", D1, "--allow-empty"], capsys)
    assert code == 0 and "nothing to do" in o
    ddir = landing(base)
    assert run_inproc(cfg).status == "committed"
    gone = os.path.join(ddir, "witnesses-0000.jsonl")
    os.rename(gone, gone + ".bak")
    open(os.path.join(ddir, "witnesses-0009.jsonl"), "wb").write(open(gone + ".bak", "rb").read()[:2000].rsplit(b"\n", 1)[0] + b"\n")
    code, _, err = cli_inproc(["run", "--config", cfg, "--date", D1, "--now", NOW], capsys)
    assert code == 1 and gone in err and "--allow-missing" in err
    code, o, err = cli_inproc(["run", "--config", cfg, "--date", D1, "--now", NOW, "--allow-missing"], capsys)
    assert code == 0, err
    assert Ledger(os.path.join(base, "out", "_ledger.duckdb")).committed(gone) is None


def test_lock_refuses_second_run(tmp_path, capsys):
    from pipelines import locks
    base = str(tmp_path)
    landing(base)
    cfg = write_config(base)
    lk = locks.date_lock(os.path.join(base, "out"), "witness", D1).acquire()
    try:
        code, _, err = cli_inproc(["run", "--config", cfg, "--date", D1], capsys)
    finally:
        lk.release()
    assert code == 75 and err.strip() == f"error: witness {D1}: another run of witness {D1} is in progress (pid {os.getpid()})"
    assert not os.path.exists(os.path.join(base, "out", "witness"))


def test_source_without_pipeline_is_skipped(tmp_path, capsys, monkeypatch):
    """A configured source whose pipeline module is absent (being built
    elsewhere) is skipped with a message, not a crash."""
    from pipelines import config
    monkeypatch.setitem(config.SOURCES, "ghost", config.SourceDef(
        "pipelines.ghost_batch", "ghost_job", inputs={"things": "thing"}, refs={}))
    base = str(tmp_path)
    os.makedirs(os.path.join(base, "s"))
    open(os.path.join(base, "s", "r.jsonl"), "w").write("{}\n")
    cfg = tmp_path / "hexsieve.toml"
    cfg.write_text(f'[output]\nroot = "{base}/out"\n[sources.ghost]\nthings = ["s/*.jsonl"]\n')
    code, _, err = cli_inproc(["run", "--config", str(cfg), "--date", D1], capsys)
    assert code == 0 and "source ghost is configured but its pipeline is not installed; skipped" in err


def test_retention_prunes_old_partitions_and_manifests(tmp_path, capsys):
    base = str(tmp_path)
    landing(base)
    cfg = write_config(base, extra="[retention]\ndays = 2\n")
    out = os.path.join(base, "out")
    assert run_inproc(cfg).status == "committed"   # retention relative to D1: nothing old yet
    parts = sorted(os.path.relpath(d, out) for d, _, f in os.walk(out) if "date=" in d)
    assert "beacon/date=2026-11-23" in parts and "witness/date=2026-11-20" in parts
    code, o, err = cli_inproc(["prune", "--config", cfg, "--as-of", "2026-11-24"], capsys)
    assert code == 0, err
    left = sorted(os.path.relpath(d, out) for d, _, f in os.walk(out) if "date=" in d)
    assert left == ["beacon/date=2026-11-23"]
    assert os.listdir(os.path.join(out, "_runs")) == []
    assert "witness/date=2026-11-20" in o and leftovers(out) == []


def test_reader_never_sees_a_partial_partition_or_two_runs(tmp_path):
    """Commits alternate between two versions of one date while DuckDB reads:
    each read returns exactly one run's rows, complete."""
    from pipelines import commit
    out = str(tmp_path / "out")
    versions = {"runA": [300, 300, 300], "runB": [500, 100]}
    stop = threading.Event()
    seen, errors = [], []

    def stage(run_id):
        st = os.path.join(out, "_staging", run_id)
        outputs = []
        for i, n in enumerate(versions[run_id]):
            rel = f"t/date={D1}/part-b{i:05d}.parquet"
            p = os.path.join(st, "data", rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            pq.write_table(pa.table({"run_id": [run_id] * n, "x": list(range(n))}), p)
            outputs.append({"table": "t", "date": D1, "path": rel, "rows": n, "bytes": 0, "sha256": f"{run_id}{i}"})
        return st, {"run_id": run_id, "outputs": outputs}

    def reader():
        while not stop.is_set():
            try:
                got = duckdb.sql(f"SELECT run_id, count(*) FROM read_parquet('{out}/t/*/*.parquet') GROUP BY ALL"
                                 ).fetchall()
            except duckdb.Error as e:  # listed a file the next commit moved away: an error, never wrong data
                errors.append(str(e)[:80])
                continue
            seen.append(tuple(sorted(got)))

    st, doc = stage("runA")
    commit.commit(out, st, "runA", ["t"], {D1}, doc, tag=D1)
    th = threading.Thread(target=reader)
    th.start()
    try:
        for k in range(30):
            rid = "runB" if k % 2 == 0 else "runA"
            st, doc = stage(rid)
            commit.commit(out, st, rid, ["t"], {D1}, doc, tag=D1)
    finally:
        stop.set()
        th.join()
    assert seen
    assert set(seen) <= {(("runA", 900),), (("runB", 600),)}, set(seen) - {(("runA", 900),), (("runB", 600),)}


def test_sources_share_the_quarantine_table(tmp_path):
    """Two sources commit the same date's quarantine partition; re-running
    one source's date keeps the other source's files."""
    from pipelines import commit
    out = str(tmp_path / "out")

    def run(source, n, run_id):
        st = os.path.join(out, "_staging", run_id)
        rel = f"quarantine/date={D1}/part-q-{source}.parquet"
        p = os.path.join(st, "data", rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        pq.write_table(pa.table({"source": [source] * n}), p)
        doc = {"run_id": run_id, "outputs": [{"table": "quarantine", "date": D1, "path": rel, "rows": n,
                                               "bytes": 0, "sha256": run_id}]}
        commit.commit(out, st, run_id, ["quarantine"], {D1}, doc, tag=f"{source}.{D1}")

    run("sensor", 3, "s1")
    run("imagery", 5, "i1")
    run("imagery", 7, "i2")
    got = dict(duckdb.sql(f"SELECT source, count(*) FROM read_parquet('{out}/quarantine/*/*.parquet') GROUP BY ALL"
                          ).fetchall())
    assert got == {"sensor": 3, "imagery": 7}
