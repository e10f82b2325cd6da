"""`hexsieve stream` on the real Beam DirectRunner, real files, real processes."""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import duckdb
import pytest
from click.testing import CliRunner

from pipelines.batch import RunSettings, execute
from pipelines.stream import Stream, StreamSettings
from pipelines.stream_witness import witness_source
from pipelines.witness_batch import witness_job

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "sample_data", "witness")
NOW = datetime(2026, 11, 21, tzinfo=timezone.utc)
NOW_S = "2026-11-21T00:00:00Z"
REFS = [f"--registry={SAMPLE}/registry.csv", f"--denylist={SAMPLE}/denylist.csv", f"--entropy={SAMPLE}/entropy.jsonl"]
# Interleaved by event time, and not in name order: arrival order must rule.
ORDER = ["beacons-0000.jsonl.gz", "witnesses-0000.jsonl", "witnesses-0001.jsonl",
         "beacons-0001.jsonl.gz", "witnesses-0002.jsonl", "witnesses-0003.jsonl"]


def land(src_name: str, landing: str, name: str | None = None, mtime: float | None = None) -> str:
    """Land a file the way writers must: write a dot-file, rename into place."""
    dst = os.path.join(landing, name or src_name)
    tmp = os.path.join(landing, "." + os.path.basename(dst) + ".part")
    shutil.copy(os.path.join(SAMPLE, src_name), tmp)
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))
    os.rename(tmp, dst)
    return dst


def stream_args(landing: str, out: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "stream", f"--beacons={landing}/beacons-*",
            f"--witnesses={landing}/witnesses-*", *REFS, f"--out={out}", f"--now={NOW_S}", "--poll=0.05s", *extra]


def manifests(out: str) -> list[dict]:
    docs = [json.load(open(p)) for p in glob.glob(f"{out}/_runs/*.json")]
    return sorted(docs, key=lambda d: d["stream"]["seq"])


def wait_for(pred, timeout=30.0):
    t = time.monotonic() + timeout
    while time.monotonic() < t:
        if pred():
            return True
        time.sleep(0.05)
    raise AssertionError("timed out")


def batch_reference(landing: str, out: str) -> None:
    job = witness_job(f"{SAMPLE}/registry.csv", f"{SAMPLE}/denylist.csv", f"{SAMPLE}/entropy.jsonl")
    execute(job, RunSettings(out=out, now=NOW, inputs={"beacon": [f"{landing}/beacons-*"],
                                                       "witness": [f"{landing}/witnesses-*"]}))


def diff(a: str, b: str, table: str) -> tuple[int, int, int]:
    """(rows in a, rows only in a, rows only in b), every column but the run's own."""
    q = lambda o: (f"SELECT * EXCLUDE (run_id, ingested_at, date) FROM "  # noqa: E731
                   f"read_parquet('{o}/{table}/*/*.parquet', hive_partitioning=true)")
    one = lambda sql: duckdb.sql(sql).fetchall()[0][0]  # noqa: E731
    return (one(f"SELECT count(*) FROM ({q(a)})"),
            one(f"SELECT count(*) FROM (({q(a)}) EXCEPT ALL ({q(b)}))"),
            one(f"SELECT count(*) FROM (({q(b)}) EXCEPT ALL ({q(a)}))"))


def assert_same_as_batch(stream_out: str, landing: str, tmp) -> None:
    ref = str(tmp / "batch")
    batch_reference(landing, ref)
    for table in ("witness", "beacon", "quarantine"):
        n, only_s, only_b = diff(stream_out, ref, table)
        assert n > 0 and only_s == 0 and only_b == 0, (table, n, only_s, only_b)


def test_files_dropped_one_by_one_in_arrival_order_match_batch(tmp_path):
    landing, out = tmp_path / "land", str(tmp_path / "out")
    landing.mkdir()
    p = subprocess.Popen(stream_args(str(landing), out, "--max-files=6"), cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for i, name in enumerate(ORDER):
            land(name, str(landing))
            wait_for(lambda: len(glob.glob(f"{out}/_runs/*.json")) >= i + 1)
            if name.startswith("witnesses-0001"):  # rows are queryable while the stream runs
                n = duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/witness/*/*.parquet') "
                               f"WHERE source_uri LIKE '%witnesses-0000%'").fetchall()[0][0]
                assert n > 0
        _, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 0, err
    docs = manifests(out)
    fed = [os.path.basename(u) for d in docs for u in d["stream"]["arrival_order"]]
    assert fed == ORDER
    assert [d["stream"]["drained"] for d in docs] == [False] * 6 + [True]
    assert all(d["accounting"]["ok"] for d in docs)
    assert sum(sum(d["stream"]["late"].values()) for d in docs) == 0
    # Same partitioned layout as batch, appended file by file, never a staging leftover.
    assert not os.path.exists(f"{out}/_staging")
    assert glob.glob(f"{out}/witness/date=2026-11-20/part-s*.parquet")
    assert_same_as_batch(out, str(landing), tmp_path)


def test_late_file_rows_are_written_late_and_counted(tmp_path):
    landing, out = tmp_path / "land", str(tmp_path / "out")
    landing.mkdir()
    for i, name in enumerate(ORDER):
        land(name, str(landing), mtime=1e9 + i)
    src = witness_source(out, f"{SAMPLE}/registry.csv", f"{SAMPLE}/denylist.csv", f"{SAMPLE}/entropy.jsonl")
    inputs = {"beacon": [f"{landing}/beacons-*"], "witness": [f"{landing}/witnesses-*"]}
    Stream(src, StreamSettings(out=out, inputs=inputs, now=NOW, max_files=6, drain=False)).run()
    # A new file of witness reports from the start of the day: ~24 h behind the watermark.
    lines = [l for l in open(f"{SAMPLE}/witnesses-0000.jsonl", "rb").read().splitlines()
             if l.startswith(b'{"pub_key": "112') and len(l) > 300][:40]
    late = landing / "witnesses-late.jsonl"
    late.write_bytes(b"\n".join(lines) + b"\n")
    res = Stream(src, StreamSettings(out=out, inputs=inputs, now=NOW, max_files=1, drain=False)).run()
    assert res["files"] == 1
    doc = manifests(out)[-1]
    assert doc["stream"]["late"] == {"beacon": 0, "witness": 40}
    assert doc["counts"]["reasons"]["witness"]["late"] == 40
    assert doc["accounting"]["ok"]
    rows = duckdb.sql(f"SELECT verdict, reasons[1] FROM read_parquet('{out}/witness/*/*.parquet') "
                      f"WHERE source_uri = '{late}'").fetchall()
    assert len(rows) == 40 and set(rows) == {("invalid", "late")}
    # Nothing else was marked late, and no record was lost or written twice.
    total = duckdb.sql(f"SELECT count(*), count(DISTINCT (source_uri, source_record)) FROM "
                       f"read_parquet('{out}/witness/*/*.parquet')").fetchall()[0]
    assert total[0] == total[1]


def _interrupt(landing, out, *, env=None, sig=signal.SIGKILL, after=None, args=None):
    """Start a stream and stop it with `sig` once `after()` holds (or a test pause point is hit).
    `args(landing, out, *extra)` builds the command line (default: the witness stream)."""
    flag = os.path.join(out + ".pause")
    if os.path.exists(flag):
        os.unlink(flag)
    # A process killed mid-run cannot remove Beam's per-pipeline temp folder:
    # keep it in the test's own directory rather than the machine's /tmp.
    tmp = out + ".tmp"
    os.makedirs(tmp, exist_ok=True)
    e = dict(os.environ, **(env or {}), HEXSIEVE_TEST_PAUSE_SIGNAL=flag, TMPDIR=tmp)
    p = subprocess.Popen((args or stream_args)(landing, out, "--batch-files=1", "--no-drain"), cwd=ROOT, env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(after or (lambda: os.path.exists(flag)), timeout=40)
        p.send_signal(sig)
        _, err = p.communicate(timeout=30)
    finally:
        p.kill()
    return p.returncode, err


def test_sigint_and_kill_9_then_restart_lose_and_duplicate_nothing(tmp_path):
    landing, out = tmp_path / "land", str(tmp_path / "out")
    landing.mkdir()
    for i, name in enumerate(ORDER):
        land(name, str(landing), mtime=1e9 + i)
    n_runs = lambda: len(glob.glob(f"{out}/_runs/*.json"))  # noqa: E731
    # 1. Ctrl-C after the first micro-batch: clean stop, open windows kept.
    rc, err = _interrupt(str(landing), out, sig=signal.SIGINT, after=lambda: n_runs() >= 1)
    assert rc == 0, err
    assert "open windows kept" in err
    # 2. kill -9 half-way through publishing a micro-batch's files.
    rc, _ = _interrupt(str(landing), out, env={"HEXSIEVE_TEST_PAUSE_AT": "stream-commit"})
    assert rc == -9
    # 3. kill -9 after the manifest, before the ledger update.
    rc, _ = _interrupt(str(landing), out, env={"HEXSIEVE_TEST_PAUSE_AT": "stream-ledger"})
    assert rc == -9
    # 4. kill -9 while the Beam pipeline is staging output.
    rc, _ = _interrupt(str(landing), out, env={"HEXSIEVE_TEST_PAUSE_AT": "write"})
    assert rc == -9
    # Restart and run to the end of the input.
    r = subprocess.run(stream_args(str(landing), out, "--idle-timeout=0.5s"), cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    docs = manifests(out)
    read = [i["uri"] for d in docs for i in d["inputs"]]
    assert sorted(read) == sorted(str(landing / n) for n in ORDER)  # each file consumed exactly once
    assert all(d["accounting"]["ok"] for d in docs)
    assert not os.path.exists(f"{out}/_staging")
    assert_same_as_batch(out, str(landing), tmp_path)


def test_dask_runner_is_refused_in_one_line():
    from pipelines.cli_stream import stream_cmd
    r = CliRunner().invoke(stream_cmd, ["--runner", "dask", "--out", "/tmp/never"])
    assert r.exit_code != 0
    assert r.output.strip().count("\n") == 0 and "batch only" in r.output


# --- imagery and sensor: same rows and verdicts as batch --------------------------------------------
DATA = os.path.join(ROOT, "sample_data")
# The sample files each span the whole day (split by device or station, not by
# time): with the default bounds every file after the first would be behind the
# watermark. Equivalence holds for records within the out-of-orderness bound,
# so the bound is a day here; a few weeks-old (stale/too_old) records stay
# truly late and are compared without their `late` reason.
LATENESS, DELAY = 2 * 86_400_000, 86_400_000


def _stream_one_by_one(src, kind: str, files: list[str], landing, out: str) -> list[dict]:
    """Land each file, then run the stream until it has consumed it (one
    micro-batch per file, no drain), then drain at the end."""
    glob_ = f"{landing}/*"
    for i, name in enumerate(files):
        shutil.copy(os.path.join(DATA, kind, name), landing / name)
        os.utime(landing / name, (1e9 + i, 1e9 + i))
        res = Stream(src, StreamSettings(out=out, inputs={src.windower.kinds[0]: [glob_]}, now=NOW,
                                         max_files=1, drain=False, allowed_lateness_ms=LATENESS,
                                         max_delay_ms=DELAY)).run()
        assert res["files"] == 1
    Stream(src, StreamSettings(out=out, inputs={src.windower.kinds[0]: [glob_]}, now=NOW,
                               idle_timeout_s=0, drain=True, allowed_lateness_ms=LATENESS,
                               max_delay_ms=DELAY)).run()
    return manifests(out)


def _diff_without_late(a: str, b: str, table: str) -> tuple[int, int, int]:
    """`diff`, with the `late` reason taken out (late rows are invalid anyway)."""
    cols = duckdb.sql(f"SELECT * FROM read_parquet('{b}/{table}/*/*.parquet') LIMIT 0").columns
    fix = "list_filter(reasons, lambda r: r <> 'late') AS reasons" if "reasons" in cols else ""
    q = lambda o: (f"SELECT * EXCLUDE (run_id, ingested_at, date{', reasons' if fix else ''}){', ' + fix if fix else ''} "  # noqa: E731
                   f"FROM read_parquet('{o}/{table}/*/*.parquet', hive_partitioning=true)")
    one = lambda sql: duckdb.sql(sql).fetchall()[0][0]  # noqa: E731
    return (one(f"SELECT count(*) FROM ({q(a)})"),
            one(f"SELECT count(*) FROM (({q(a)}) EXCEPT ALL ({q(b)}))"),
            one(f"SELECT count(*) FROM (({q(b)}) EXCEPT ALL ({q(a)}))"))


# (source, sample files in landing order, tables compared with batch) of the
# imagery and sensor streaming equivalence tests.
STREAM_CASES = [
    ("imagery", ["frames-0000.jsonl.gz", "frames-0001.jsonl", "frames-0002.jsonl", "mapillary-0000.jsonl"],
     ("imagery",)),
    ("sensor", ["readings-0000.jsonl.gz", "readings-0001.jsonl", "readings-0002.jsonl", "readings-0003.jsonl",
                "readings-0004.parquet"], ("sensor", "sensor_hourly", "sensor_daily")),
]


@pytest.mark.parametrize("kind,files,tables", STREAM_CASES)
def test_imagery_and_sensor_streamed_file_by_file_match_batch(tmp_path, kind, files, tables):
    landing, out, ref = tmp_path / "land", str(tmp_path / "out"), str(tmp_path / "batch")
    landing.mkdir()
    if kind == "imagery":
        from pipelines.imagery_batch import imagery_job
        from pipelines.stream_imagery import imagery_source
        src, job = imagery_source(f"{DATA}/imagery/devices.csv", out=out), imagery_job(f"{DATA}/imagery/devices.csv")
    else:
        from pipelines.sensor_batch import sensor_job
        from pipelines.stream_sensor import sensor_source
        src, job = sensor_source(f"{DATA}/sensor/stations.csv", out=out), sensor_job(f"{DATA}/sensor/stations.csv")
    docs = _stream_one_by_one(src, kind, files, landing, out)
    assert [os.path.basename(u) for d in docs for u in d["stream"]["arrival_order"]] == files
    assert all(d["accounting"]["ok"] for d in docs)
    late = sum(sum(d["stream"]["late"].values()) for d in docs)
    assert late <= 2 and late == sum(d["counts"]["reasons"].get(tables[0], {}).get("late", 0) for d in docs)
    assert not os.path.exists(f"{out}/_staging")
    execute(job, RunSettings(out=ref, now=NOW, inputs={src.windower.kinds[0]: [f"{landing}/*"]}))
    for table in (*tables, "quarantine"):
        if table == "quarantine" and not glob.glob(f"{ref}/quarantine/*/*.parquet"):
            continue
        n, only_s, only_b = _diff_without_late(out, ref, table)
        assert n > 0 and only_s == 0 and only_b == 0, (table, n, only_s, only_b)


def _source_args(kind: str):
    """`stream_args` for imagery or sensor, with the equivalence tests' lateness bounds."""
    refs = ([f"--devices={DATA}/imagery/devices.csv"] if kind == "imagery"
            else [f"--stations={DATA}/sensor/stations.csv"])
    flag = "--frames" if kind == "imagery" else "--readings"

    def args(landing: str, out: str, *extra: str) -> list[str]:
        return [sys.executable, "-m", "pipelines.cli", "stream", f"--source={kind}", f"{flag}={landing}/*", *refs,
                f"--out={out}", f"--now={NOW_S}", "--poll=0.05s", f"--allowed-lateness={LATENESS // 1000}s",
                f"--max-delay={DELAY // 1000}s", *extra]
    return args


@pytest.mark.parametrize("kind,files,tables", STREAM_CASES)
def test_imagery_and_sensor_kill_9_then_restart_lose_and_duplicate_nothing(tmp_path, kind, files, tables):
    """kill -9 inside micro-batch commits (and while staging), files landed one at a
    time between the kills; the restarted stream ends equal to batch, each file once."""
    from pipelines.ledger import Ledger
    landing, out, ref = tmp_path / "land", str(tmp_path / "out"), str(tmp_path / "batch")
    landing.mkdir()
    args = _source_args(kind)

    def land_next(i):
        shutil.copy(os.path.join(DATA, kind, files[i]), landing / ("." + files[i] + ".part"))
        os.utime(landing / ("." + files[i] + ".part"), (1e9 + i, 1e9 + i))
        os.rename(landing / ("." + files[i] + ".part"), landing / files[i])

    def kill_at(point):
        rc, err = _interrupt(str(landing), out, env={"HEXSIEVE_TEST_PAUSE_AT": point}, args=args)
        assert rc == -9, err
        return err

    # 1. First file: kill -9 after the manifest, before the ledger row.
    land_next(0)
    kill_at("stream-ledger")
    # 2. Second file: kill -9 half-way through publishing its micro-batch (after the first rename).
    land_next(1)
    assert "completed commit of" in kill_at("stream-commit")  # the journal of step 1 was replayed
    # 3. The rest, one by one: kill -9 while Beam stages a micro-batch's output.
    for i in range(2, len(files)):
        land_next(i)
    assert "completed commit of" in kill_at("write")  # step 2's half-published commit finished
    # 4. Consume every file without draining, then kill -9 inside the drain's commit
    #    (the micro-batch that publishes most rows).
    r = subprocess.run(args(str(landing), out, "--batch-files=1", "--no-drain", "--idle-timeout=0.5s"), cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "discarded uncommitted micro-batch" in r.stderr  # step 3 had no journal
    assert manifests(out)[-1]["stream"]["held_rows"] > 0
    rc, err = _interrupt(str(landing), out, env={"HEXSIEVE_TEST_PAUSE_AT": "stream-commit"},
                         args=lambda l, o, *x: args(l, o, "--idle-timeout=0.5s"))
    assert rc == -9, err
    assert not any(d["stream"]["drained"] for d in manifests(out))  # killed before its manifest
    # 5. Restart to completion.
    r = subprocess.run(args(str(landing), out, "--idle-timeout=0.5s"), cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "completed commit of" in r.stderr

    docs = manifests(out)
    read = [i["uri"] for d in docs for i in d["inputs"]]
    assert sorted(read) == sorted(str(landing / n) for n in files)  # each file consumed exactly once
    assert [os.path.basename(u) for d in docs for u in d["stream"]["arrival_order"]] == files
    assert all(d["accounting"]["ok"] for d in docs)
    assert docs[-1]["stream"]["drained"] and docs[-1]["stream"]["held_rows"] == 0
    assert not os.path.exists(f"{out}/_staging")
    rows = Ledger(f"{out}/_ledger.duckdb").rows(source=kind)
    assert sorted(r["uri"] for r in rows) == sorted(str(landing / n) for n in files)  # one row per file
    assert {r["status"] for r in rows} == {"committed"}
    late = sum(sum(d["stream"]["late"].values()) for d in docs)
    assert late <= 2 and late == sum(d["counts"]["reasons"].get(tables[0], {}).get("late", 0) for d in docs)
    if kind == "imagery":
        from pipelines.imagery_batch import imagery_job
        job = imagery_job(f"{DATA}/imagery/devices.csv")
    else:
        from pipelines.sensor_batch import sensor_job
        job = sensor_job(f"{DATA}/sensor/stations.csv")
    execute(job, RunSettings(out=ref, now=NOW, inputs={docs[0]["inputs"][0]["kind"]: [f"{landing}/*"]}))
    for table in (*tables, "quarantine"):
        if table == "quarantine" and not glob.glob(f"{ref}/quarantine/*/*.parquet"):
            continue
        n, only_s, only_b = _diff_without_late(out, ref, table)
        assert n > 0 and only_s == 0 and only_b == 0, (table, n, only_s, only_b)


# --- --config and the shared ledger ------------------------------------------------------------------
def test_stream_config_sample_max_files(tmp_path):
    """The shipped sample config streams as is (its output root moved with --out)."""
    from pipelines.cli_stream import stream_cmd
    out = str(tmp_path / "out")
    r = CliRunner().invoke(stream_cmd, ["--config", os.path.join(DATA, "hexsieve.toml"), "--out", out,
                                        "--now", NOW_S, "--max-files", "2", "--poll", "0.05s", "--quiet"])
    assert r.exit_code == 0, r.output
    from pipelines.config import load
    from pipelines.ledger import Ledger
    docs = manifests(out)
    names = set(load(os.path.join(DATA, "hexsieve.toml")).sources)
    assert {d["source"] for d in docs} == names  # every configured source; --max-files counts per source
    for name in names:
        mine = [d for d in docs if d["source"] == name]
        assert sum(len(d["inputs"]) for d in mine) == 2 and mine[-1]["stream"]["drained"]
        rows = Ledger(f"{out}/_ledger.duckdb").rows(source=name)
        assert len(rows) == 2 and {r["status"] for r in rows} == {"committed"}


def test_streams_sharing_a_process_take_turns_at_beam(tmp_path):
    """Two in-process Beam runs at once can corrupt each other's data channel
    (Beam 2.77, multi_threading), so the sample config's three streams take
    turns: while one stream's Beam run is held at its first file read, no
    other stream gets a micro-batch through."""
    out = str(tmp_path / "out")
    flag = str(tmp_path / "paused")
    env = dict(os.environ, HEXSIEVE_TEST_PAUSE_AT="read", HEXSIEVE_TEST_PAUSE_SIGNAL=flag,
               HEXSIEVE_TEST_PAUSE_SECONDS="5", TMPDIR=str(tmp_path))
    p = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "stream", "--config",
                          os.path.join(DATA, "hexsieve.toml"), f"--out={out}", f"--now={NOW_S}",
                          "--max-files=2", "--batch-files=1", "--poll=0.05s", "--quiet"],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: os.path.exists(flag), timeout=60)
        time.sleep(1)  # a micro-batch whose Beam run ended just before the pause may still commit
        during = sorted(glob.glob(f"{out}/_runs/*.json"))
        time.sleep(3)  # 1 s before the pause ends; an unpaused micro-batch takes well under 3 s
        assert sorted(glob.glob(f"{out}/_runs/*.json")) == during
        _, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 0, err
    docs = manifests(out)
    assert {d["source"] for d in docs} == {"witness", "imagery", "sensor"}
    assert sum(len(d["inputs"]) for d in docs) == 6  # --max-files=2 per source


def _config(tmp_path, landing) -> str:
    cfg = tmp_path / "hexsieve.toml"
    cfg.write_text(f"""[output]
root = "{tmp_path}/out"
[sources.witness]
beacons = ["{landing}/{{date}}/beacons-*"]
witnesses = ["{landing}/{{date}}/witnesses-*"]
registry = "{SAMPLE}/registry.csv"
denylist = "{SAMPLE}/denylist.csv"
entropy = "{SAMPLE}/entropy.jsonl"
[sources.sensor]
readings = ["{landing}/sensor/{{yyyy}}/{{mm}}/{{dd}}/*"]
stations = "{DATA}/sensor/stations.csv"
""")
    return str(cfg)


def test_stream_ledger_makes_a_following_run_a_noop(tmp_path):
    """Two sources in one `stream --config` ({date} globs match any date); the
    DuckDB ledger they write makes `hexsieve run` for the same files a no-op."""
    from pipelines.cli_schedule import run_cmd
    from pipelines.cli_stream import stream_cmd
    landing = tmp_path / "land"
    day = landing / "2026-11-20"
    day.mkdir(parents=True)
    for i, name in enumerate(ORDER):
        land(name, str(day), mtime=1e9 + i)
    sdir = landing / "sensor" / "2026" / "11" / "20"
    sdir.mkdir(parents=True)
    shutil.copy(f"{DATA}/sensor/readings-0000.jsonl.gz", sdir)
    cfg, out = _config(tmp_path, landing), str(tmp_path / "out")
    r = CliRunner().invoke(stream_cmd, ["--config", cfg, "--now", NOW_S, "--idle-timeout", "0.3s",
                                        "--poll", "0.05s", "--quiet"])
    assert r.exit_code == 0, r.output
    docs = [json.load(open(p)) for p in glob.glob(f"{out}/_runs/*.json")]
    assert {d["source"] for d in docs} == {"witness", "sensor"}
    assert sum(len(d["inputs"]) for d in docs) == 7
    r = CliRunner().invoke(run_cmd, ["--config", cfg, "--date", "2026-11-20", "--now", NOW_S, "--source", "witness"])
    assert r.exit_code == 0, r.output
    assert len(glob.glob(f"{out}/_runs/*.json")) == len(docs), r.output  # nothing ingested again
    # And the other way: a file a run ingested is skipped by a later stream.
    run_cmd_out = r.output
    assert "witness" in run_cmd_out


def test_one_stream_process_per_source_share_an_output_root(tmp_path):
    """What docs/streaming.md recommends for sources that must not wait on
    each other: one `stream --config --source X` process per source, all at
    once over one output root and ledger. Each commits its files once, and the
    tables hold what one process streaming every source writes."""
    from pipelines.config import load
    from pipelines.ledger import Ledger
    cfg = os.path.join(DATA, "hexsieve.toml")
    names = sorted(load(cfg).sources)
    base = [sys.executable, "-m", "pipelines.cli", "stream", "--config", cfg, "--now", NOW_S, "--max-files", "2",
            "--poll", "0.05s", "--quiet"]
    out, ref = str(tmp_path / "out"), str(tmp_path / "ref")
    procs = [subprocess.Popen(base + ["--out", out, "--source", n], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in names]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    r = subprocess.run(base + ["--out", ref], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    for name in names:
        rows = Ledger(f"{out}/_ledger.duckdb").rows(source=name)
        assert len(rows) == 2 and {x["status"] for x in rows} == {"committed"}, name
    con = duckdb.connect()
    tables = sorted({p.split(os.sep)[-3] for p in glob.glob(f"{ref}/*/date=*/*.parquet")})
    assert {"imagery", "sensor"} <= set(tables) and {"beacon", "witness"} & set(tables)  # every source wrote
    for t in tables:
        src = "read_parquet('{d}/" + t + "/*/*.parquet', hive_partitioning = true)"
        cols = [c for c, *_ in con.execute(f"DESCRIBE SELECT * FROM {src.format(d=ref)}").fetchall()
                if c not in ("run_id", "ingested_at")]  # the run's own identity and clock
        q = f"SELECT {', '.join(cols)} FROM {src} ORDER BY ALL"
        have, want = con.execute(q.format(d=out)).fetchall(), con.execute(q.format(d=ref)).fetchall()
        assert want and have == want, t
