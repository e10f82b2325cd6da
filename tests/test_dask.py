"""The batch pipeline on Beam's DaskRunner over a real local dask.distributed
cluster (2 worker processes): same rows as the DirectRunner, and a worker
killed mid-run never leaves a partial result committed."""
import contextlib
import glob
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import duckdb
import pytest

from pipelines.batch import RunSettings, execute
from pipelines.witness_batch import witness_job

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "sample_data", "witness")
NOW = datetime(2026, 11, 21, tzinfo=timezone.utc)


@contextlib.contextmanager
def _external_cluster():
    """A cluster hexsieve only connects to (workers spawned by Dask)."""
    from dask.distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        yield ["--runner=dask", f"--dask_client_address={c.scheduler_address}"]


@pytest.fixture(scope="module")
def cluster():
    """Beam args for a cluster hexsieve only connects to."""
    with _external_cluster() as beam_args:
        yield beam_args


def run(out, data=SAMPLE, beam_args=(), **kw):
    job = witness_job(f"{data}/registry.csv", f"{data}/denylist.csv", f"{data}/entropy.jsonl")
    return execute(job, RunSettings(out=str(out), now=NOW, beam_args=list(beam_args),
                                    inputs={"beacon": [f"{data}/beacons-*.jsonl.gz"],
                                            "witness": [f"{data}/witnesses-*.jsonl"]}, **kw))


def file_hashes(out):
    return {os.path.relpath(p, out): hashlib.sha256(open(p, "rb").read()).hexdigest()
            for p in glob.glob(f"{out}/*/*/*.parquet")}


def rows(out, table):
    return duckdb.sql(f"SELECT * EXCLUDE (run_id, ingested_at) FROM read_parquet('{out}/{table}/*/*.parquet', "
                      f"hive_partitioning=true) ORDER BY record_sha256, source_uri, source_record").fetchall()


def test_dask_equals_direct_row_for_row_and_byte_for_byte(tmp_path, cluster):
    d = run(tmp_path / "direct")
    k = run(tmp_path / "dask", beam_args=cluster)
    assert k["runner"] == "dask" and d["runner"] == "direct"
    for table in ("witness", "beacon", "quarantine"):
        a, b = rows(tmp_path / "direct", table), rows(tmp_path / "dask", table)
        assert a == b and len(a) > 0, table
    assert d["counts"] == k["counts"]
    assert d["accounting"] == k["accounting"]
    assert file_hashes(tmp_path / "direct") == file_hashes(tmp_path / "dask")


@pytest.fixture(scope="module")
def bigger(tmp_path_factory):
    """Enough data (~150k witness reports) that a run lasts a few seconds."""
    from pipelines.generate.witness import generate
    d = tmp_path_factory.mktemp("big")
    generate(str(d), rows=150_000, files=12, seed=11)
    return str(d)


def _worker_pids(client):
    return client.run(os.getpid)


def _hexsieve_cluster():
    """The local cluster `--runner dask --dask-workers 2` starts (workers forked from its fork server)."""
    from pipelines.runner import runner_context
    return runner_context("dask", None, 2, [])


def _address(beam_args):
    return next(a.split("=", 1)[1] for a in beam_args if a.startswith("--dask_client_address="))


@pytest.mark.parametrize("cluster_of", [_external_cluster, _hexsieve_cluster], ids=["spawned", "forked"])
def test_killed_worker_never_commits_a_partial_result(tmp_path, bigger, cluster_of):
    from dask.distributed import Client
    baseline = tmp_path / "baseline"
    run(baseline, data=bigger)
    out = tmp_path / "dask"
    killed = []
    with cluster_of() as beam_args, Client(_address(beam_args)) as client:
        client.wait_for_workers(2, timeout=60)
        pids = list(_worker_pids(client).values())

        def killer():
            # Kill a worker once the run is under way (shuffle shards appear).
            deadline = time.time() + 60
            while time.time() < deadline:
                if glob.glob(f"{out}/_staging/*/shuffle/*/*.arrow"):
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                    return
                time.sleep(0.02)

        t = threading.Thread(target=killer)
        t.start()
        error = None
        try:
            doc = run(out, data=bigger, beam_args=beam_args)
        except Exception as e:  # a loud failure is an acceptable outcome
            error = e
        t.join()
    assert killed, "the worker was not killed during the run"
    if error is None:
        # Dask recomputed the lost tasks: the result must equal the clean run exactly.
        assert doc["accounting"]["ok"]
        for table in ("witness", "beacon", "quarantine"):
            assert rows(out, table) == rows(baseline, table), table
        assert file_hashes(out) == file_hashes(baseline)
    else:
        # Failed loudly: nothing committed, no manifest, previous (empty) state intact.
        assert not glob.glob(f"{out}/*/date=*/*.parquet")
        assert not glob.glob(f"{out}/_runs/*.json")


def _worker_start():
    """What a worker process started with: its parent's command line, whether
    Beam and hexsieve's DoFns were imported before any task, its BLAS threads."""
    import psutil
    return {"parent": " ".join(psutil.Process(os.getppid()).cmdline()),
            "preloaded": all(m in sys.modules for m in ("apache_beam", "transforms.beam.witness",
                                                        "transforms.beam.imagery", "transforms.beam.sensor")),
            "omp": os.environ.get("OMP_NUM_THREADS")}


def test_local_workers_are_forked_from_a_server_that_imported_beam_once():
    # Spawned workers each imported Dask, Beam and the DoFns while the driver
    # did too; forked from one server, they start with those loaded, and
    # still with the workers' environment (one BLAS thread each).
    from dask.distributed import Client
    with _hexsieve_cluster() as beam_args, Client(_address(beam_args)) as client:
        client.wait_for_workers(2, timeout=60)
        info = list(client.run(_worker_start).values())
    assert len(info) == 2
    for w in info:
        assert "multiprocessing.forkserver" in w["parent"], w
        assert w["preloaded"] and w["omp"] == "1", w


def _housekeeping(dask_worker=None, dask_scheduler=None) -> dict:
    server = dask_worker or dask_scheduler
    return {name: pc.callback_time for name, pc in server.periodic_callbacks.items()}


def test_local_cluster_wakes_for_housekeeping_at_the_longer_intervals():
    # Dask's defaults wake the scheduler and each worker every 20 ms (tick),
    # 500 ms (system monitor) and 100 ms (worker memory check); each wake-up
    # takes the GIL from the task thread. The local cluster uses longer ones,
    # and they must reach the forked workers, not only the driver's config.
    from dask.distributed import Client

    from pipelines.runner import HOUSEKEEPING_INTERVALS
    import dask
    ms = {k: round(dask.utils.parse_timedelta(v) * 1000) for k, v in HOUSEKEEPING_INTERVALS.items()}
    with _hexsieve_cluster() as beam_args, Client(_address(beam_args)) as client:
        client.wait_for_workers(2, timeout=60)
        workers = list(client.run(_housekeeping).values())
        scheduler = client.run_on_scheduler(_housekeeping)
    assert len(workers) == 2
    for cb in workers:
        assert cb["tick"] == ms["distributed.admin.tick.interval"] == 200, cb
        assert cb["monitor"] == ms["distributed.admin.system-monitor.interval"] == 2000, cb
        assert cb["memory_monitor"] == ms["distributed.worker.memory.monitor-interval"] == 1000, cb
    assert scheduler["tick"] == 200 and scheduler["monitor"] == 2000, scheduler


def test_cli_runner_dask_with_local_workers(tmp_path):
    out = tmp_path / "cli"
    r = subprocess.run([sys.executable, "-m", "pipelines.cli", "batch", "witness",
                        "--beacons", f"{SAMPLE}/beacons-*.jsonl.gz", "--witnesses", f"{SAMPLE}/witnesses-*.jsonl",
                        "--registry", f"{SAMPLE}/registry.csv", "--out", str(out), "--now", "2026-11-21T00:00:00Z",
                        "--runner", "dask", "--dask-workers", "2"], capture_output=True, text=True, timeout=240,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "on dask" in r.stdout and "accounting OK" in r.stdout
    assert "Traceback" not in r.stderr
    # The workers' Beam import chatter ("apitools not found…") stays out of the terminal.
    assert "WARNING" not in r.stderr, r.stderr
    doc = json.load(open(glob.glob(f"{out}/_runs/*.json")[0]))
    assert doc["runner"] == "dask"


@pytest.mark.timeout(120)
def test_ctrl_c_on_a_local_cluster_run_aborts_cleanly(tmp_path, bigger):
    # Ctrl-C reaches the whole process group: the driver aborts with one
    # line and commits nothing; the workers leave it to the driver (no
    # traceback from each of them) and none is left running.
    import psutil
    out = tmp_path / "o"
    p = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "batch", "witness",
                          "--beacons", f"{bigger}/beacons-*.jsonl.gz", "--witnesses", f"{bigger}/witnesses-*.jsonl",
                          "--registry", f"{bigger}/registry.csv", "--out", str(out), "--now", "2026-11-21T00:00:00Z",
                          "--runner", "dask", "--dask-workers", "2", "--quiet"], cwd=ROOT, start_new_session=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not glob.glob(f"{out}/_staging/*/shuffle/*/*.arrow") and time.time() < deadline and p.poll() is None:
        time.sleep(0.02)
    assert p.poll() is None, "the run ended before it could be interrupted"
    procs = psutil.Process(p.pid).children(recursive=True)
    assert len(procs) >= 3  # fork server and two workers at least
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1] == "aborted"
    _, alive = psutil.wait_procs(procs, timeout=10)
    assert not alive, [q.cmdline() for q in alive]
    assert not glob.glob(f"{out}/*/date=*/*.parquet")
    assert not glob.glob(f"{out}/_runs/*.json")


def test_cli_dask_options_need_dask_runner(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pipelines.cli", "batch", "witness",
                        "--beacons", f"{SAMPLE}/beacons-*.jsonl.gz", "--witnesses", f"{SAMPLE}/witnesses-*.jsonl",
                        "--registry", f"{SAMPLE}/registry.csv", "--out", str(tmp_path / "o"),
                        "--dask-workers", "2"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode != 0
    assert "need --runner dask" in r.stderr and "Traceback" not in r.stderr


def test_cli_commands_load_without_beam():
    # The CLI starts a local cluster before it imports Beam, so the workers'
    # start overlaps the driver's imports: no command module may import Beam
    # at load time.
    code = ("import sys, pipelines.cli as c; c._load(); import pipelines.runner, transforms.errors; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('apache_beam', 'distributed')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.mark.timeout(90)
def test_local_workers_that_cannot_start_fail_the_run_instead_of_hanging(tmp_path, monkeypatch):
    # Local workers start in the background while the driver builds the
    # graph; if they never join, the run must end with a clear error and
    # commit nothing rather than wait forever for workers.
    from pipelines import runner
    monkeypatch.setattr(runner, "WORKER_PRELOAD", ["hexsieve_no_such_preload_module"])
    monkeypatch.setattr(runner, "WORKER_START_TIMEOUT_S", 5.0)
    out = tmp_path / "o"
    t0 = time.monotonic()
    with pytest.raises(runner.ClusterError, match="did not start"):
        with runner.runner_context("dask", None, 2, []) as args:
            run(out, beam_args=args)
    assert time.monotonic() - t0 < 60
    assert not glob.glob(f"{out}/*/date=*/*.parquet")
    assert not glob.glob(f"{out}/_runs/*.json")
