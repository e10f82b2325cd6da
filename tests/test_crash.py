"""kill -9 of a real `hexsieve run` at several points, then a rerun: the
published state is always a committed one, and the final outputs equal a
clean run's row for row, with nothing left behind."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from _sched import D1, HEXSIEVE, NOW, landing, leftovers, rows, run_inproc, write_config

TABLES = ("witness", "beacon", "quarantine")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    b = str(tmp_path_factory.mktemp("crash"))
    landing(b)
    ref = write_config(b, out=os.path.join(b, "ref"), name="ref.toml")
    o = run_inproc(ref)
    assert o.status == "committed"
    return b


def start_paused(cfg: str, point: str, tmp: str) -> tuple[subprocess.Popen, str]:
    sig = os.path.join(tmp, f"paused-{point}")
    env = dict(os.environ, HEXSIEVE_TEST_PAUSE_AT=point, HEXSIEVE_TEST_PAUSE_SIGNAL=sig,
               HEXSIEVE_TEST_PAUSE_SECONDS="120", TMPDIR=tmp)  # a killed run's Beam temp folder stays here
    p = subprocess.Popen([HEXSIEVE, "run", "--config", cfg, "--date", D1, "--now", NOW, "--quiet"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while not os.path.exists(sig):
        if p.poll() is not None:
            raise AssertionError(f"run ended before reaching {point}: {p.returncode} {p.stderr.read().decode()}")
        if time.monotonic() > deadline:
            p.kill()
            raise AssertionError(f"run never reached {point}")
        time.sleep(0.05)
    return p, sig


def kill9(p: subprocess.Popen) -> None:
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL


def assert_like_reference(base: str, out: str) -> None:
    ref = os.path.join(base, "ref")
    for t in TABLES:
        got, want = rows(out, t), rows(ref, t)
        assert len(got) == len(want) and got == want, f"{t}: {len(got)} rows vs {len(want)} in a clean run"
    assert leftovers(out) == []


def partition_runs(out: str) -> dict[str, set]:
    """Per published partition, the runs its rows come from (one, always)."""
    import duckdb
    res = {}
    for t in TABLES:
        td = os.path.join(out, t)
        for part in sorted(os.listdir(td)) if os.path.isdir(td) else []:
            got = duckdb.sql(f"SELECT DISTINCT run_id FROM read_parquet('{td}/{part}/*.parquet')").fetchall()
            res[f"{t}/{part}"] = {r[0] for r in got}
    return res


@pytest.mark.parametrize("point", ["read", "write", "journal", "ledger"])
def test_kill9_then_rerun_equals_clean_run(base, tmp_path, capsys, point):
    out = str(tmp_path / "out")
    cfg = write_config(base, out=out, name=f"crash-{point}.toml")
    p, _ = start_paused(cfg, point, str(tmp_path))
    if point == "read":
        # the live run holds the date lock: a second run is refused, not interleaved
        from _sched import cli_inproc
        code, _, err = cli_inproc(["run", "--config", cfg, "--date", D1, "--now", NOW], capsys)
        assert code == 75
        assert f"another run of witness {D1} is in progress (pid {p.pid})" in err
        assert len(err.strip().splitlines()) == 1
    kill9(p)
    if point in ("read", "write"):
        assert not os.path.isdir(os.path.join(out, "witness")), "nothing may be published before the commit"
    o = run_inproc(cfg)
    if point in ("journal", "ledger"):
        # the killed run's commit is completed by recovery / its manifest fills the ledger: nothing to redo
        assert o.status == "noop", o.message
    else:
        assert o.status == "committed"
    assert_like_reference(base, out)
    from pipelines.ledger import Ledger
    led = Ledger(os.path.join(out, "_ledger.duckdb")).rows(source="witness", logical_date=D1)
    n_files = len(os.listdir(os.path.join(base, "landing", "witness", D1)))
    assert sorted(r["status"] for r in led if r["status"] != "failed") == ["committed"] * n_files


def test_kill9_mid_commit_keeps_partitions_whole(base, tmp_path):
    """A re-run (new file for the date) killed after its first partition swap:
    every partition shows exactly one run, the killed commit is completed by
    the next run, and the result equals a clean run."""
    out = str(tmp_path / "out")
    part = write_config(base, out=out, name="partial.toml",
                        witness_globs='["landing/witness/{date}/witnesses-0000.jsonl"]')
    first = run_inproc(part)
    assert first.status == "committed"
    before = partition_runs(out)
    cfg = write_config(base, out=out, name="crash-commit.toml")
    p, _ = start_paused(cfg, "commit", str(tmp_path))
    during = partition_runs(out)
    assert all(len(r) == 1 for r in during.values()), during
    assert during != before, "the first swap happened"
    assert {r for rs in during.values() for r in rs} == {first.run_id, during["beacon/date=2026-11-20"].copy().pop()}
    kill9(p)
    assert all(len(r) == 1 for r in partition_runs(out).values())
    o = run_inproc(cfg)
    assert o.status == "noop", o.message  # recovery finished the killed commit
    assert_like_reference(base, out)
