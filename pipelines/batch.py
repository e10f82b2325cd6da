"""The shared batch driver: every source's batch job is a `BatchJob`.

The driver does what must happen exactly once, outside the workers: expand
inputs, validate reference tables, build and run the Beam pipeline, then read
the workers' receipts, check the accounting, and commit atomically. A source
supplies only its specs, its output tables and a `build` function that wires
its transforms between the shared read and write steps.
"""
from __future__ import annotations

import gc
import hashlib
import os
import re
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import apache_beam as beam
import pyarrow as pa

from pipelines import __version__, commit, locks, manifest
from pipelines.runner import new_pipeline, parallel_slots, pipeline_options, runner_name
from schemas.quarantine import QUARANTINE
from transforms import fileio
from transforms.errors import InputError
from transforms.beam.route import by_tag
from transforms.beam.fuse import Fused
from transforms.beam.read import QUARANTINE as Q_TAG, STATS, ReadFiles, StatsReceipt
from transforms.beam.shuffle import StageByKey, write_ipc
from transforms.beam.spread import SpreadFiles, partition_salts
from transforms.beam.write import WriteParquet, WriteQuarantine, WriteReceipt
from transforms.sources import SourceSpec


@dataclass
class OutputTable:
    schema: pa.Schema
    date_column: str | None  # event-time column (ms) that picks the date partition
    # False for derived tables without per-row `source_uri` (e.g. hourly/daily
    # aggregates): listed in the manifest's outputs, not in per-file accounting.
    accounted: bool = True


@dataclass
class BatchJob:
    source: str
    specs: dict[str, SourceSpec]                      # kind → spec
    tables: dict[str, OutputTable]                    # output table → schema/date
    # build(pipeline_stage_context) → list of receipt PCollections
    build: Callable[["Stage", dict], list]
    rules: dict                                       # rule tables + versions for the manifest
    rules_version: str
    extra_manifest: dict = field(default_factory=dict)
    # kind → (shuffle name, key column): records of each kind are sharded by
    # key right where they are read; `build` receives (bucket, shard ref)
    # PCollections, one per kind.
    shard_keys: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class RunSettings:
    out: str
    inputs: dict[str, list[str]]                      # kind → patterns
    run_id: str | None = None
    now: datetime | None = None
    logical_date: str | None = None
    beam_args: list[str] = field(default_factory=list)
    chunk_bytes: int = 16 << 20
    n_buckets: int | None = None
    progress: bool = False
    # Scheduled runs: publish only this date's files in shared partitions
    # (see commit.plan_tagged) instead of owning whole partitions.
    commit_tag: str | None = None
    # uri → the earlier input with identical bytes: quarantined as duplicate_file
    duplicates: dict[str, str] = field(default_factory=dict)


class RunInProgress(Exception):
    """Another live process is running with the same run id."""


@dataclass
class Stage:
    """What a source's `build` needs: where to stage, how to stamp rows."""
    staging: str
    run_columns: dict
    now_ms: int
    n_buckets: int
    settings: RunSettings
    # Per-bucket GroupByKey salts that spread buckets evenly over the
    # DaskRunner's partitions (empty on other runners; see partition_salts).
    salts: tuple[int, ...] = ()

    def stage_ref(self, name: str, table: pa.Table) -> str:
        """Stage a reference table for the workers; its uri.

        Arrow IPC, not Parquet: the run's own files, read back whole by
        every worker process. A 100k-hotspot registry took 24 ms to write
        and 41 ms to read as zstd Parquet, 2 ms and 0.4 ms as IPC, both on
        the way to the first task of their stage."""
        uri = fileio.join(self.staging, "refs", f"{name}.arrow")
        write_ipc(uri, table)
        return uri

    def writer(self, job: BatchJob, table: str) -> WriteParquet:
        t = job.tables[table]
        return WriteParquet(self.staging, table, t.schema, self.run_columns, date_column=t.date_column,
                            accounted=t.accounted)


# A run id names a staging folder (deleted before and after the run), a lock
# and `_runs/<run_id>.json`: "..", a slash or an absolute path would point
# those outside the output root.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.fullmatch(run_id):
        raise InputError(f"--run-id {run_id!r}: use 1-128 letters, digits, '.', '_' or '-', "
                         f"starting with a letter or digit")
    return run_id


def _date_quarantine_by_file(staging: str, outputs: list[dict]) -> list[dict]:
    """Move each input file's staged quarantine rows to the date partition
    holding most of that file's validated rows (the processing date only for
    a file with none).

    Malformed rows have no event time of their own. Dated by processing time,
    re-running yesterday's job today added a second copy of them, and a later
    run whose rows fell on that processing date replaced them (a batch run
    owns the partitions it writes). Dated by their file's rows, a re-run
    writes them to the same partition it replaces."""
    per_date: dict[str, Counter] = defaultdict(Counter)
    vacated: set[str] = set()  # partitions some file's rows were moved out of
    for o in outputs:
        if o["table"] != "quarantine":
            for uri, c in o.get("per_source", {}).items():
                per_date[uri][o["date"]] += sum(c.values())
    for o in outputs:
        if o["table"] != "quarantine" or len(o.get("per_source", {})) != 1:
            continue
        days = per_date.get(next(iter(o["per_source"])))
        if not days:
            continue
        day = min(days, key=lambda d: (-days[d], d))
        if day == o["date"]:
            continue
        new = f"quarantine/date={day}/{os.path.basename(o['path'])}"
        os.makedirs(os.path.join(staging, "data", os.path.dirname(new)), exist_ok=True)
        os.replace(os.path.join(staging, "data", o["path"]), os.path.join(staging, "data", new))
        vacated.add(os.path.join(staging, "data", os.path.dirname(o["path"])))
        o["path"], o["date"] = new, day
    for d in vacated:
        if not os.listdir(d):
            os.rmdir(d)
    return sorted(outputs, key=lambda o: o["path"])


def input_flag(kind: str) -> str:
    """The CLI flag that names an input kind ("witness" → "--witnesses")."""
    return f"--{kind}es" if kind.endswith("s") else f"--{kind}s"


def _one_kind_per_file(files: dict[str, list[fileio.FileInfo]]) -> None:
    """A file given as two kinds (e.g. --beacons and --witnesses) would be read
    as both, and its per-file accounting would mix the two: refuse it."""
    seen: dict[object, tuple[str, str]] = {}
    for kind in sorted(files):
        for f in files[kind]:
            other = seen.setdefault(fileio.identity(f.uri), (kind, f.uri))
            if other[0] != kind:
                raise InputError(f"{f.uri} is given as both {input_flag(other[0])} and {input_flag(kind)}")


def default_run_id(source: str, files: list[fileio.FileInfo], now: datetime) -> str:
    """Deterministic for the same inputs and --now, so re-runs replace, not add."""
    h = hashlib.sha256("|".join(f"{f.uri}:{f.size}" for f in files).encode()).hexdigest()[:8]
    return f"{source}-{now.strftime('%Y%m%dT%H%M%SZ')}-{h}"


BUCKET_INPUT_BYTES = 64 << 20


def choose_buckets(total_bytes: int) -> int:
    """One bucket per ~64 MiB of input bounds a bucket's memory; ≥ 2 for
    parallelism. Fewer, larger buckets mean fewer shard spans (chunks ×
    buckets) and fewer output files. With 32 MiB (the choice until the
    read buffer and the start-up changes of 2026-12-05), the 2M-record
    benchmark used 22 buckets and 10.4M records 109; with 64 MiB 11 and 55
    (12 and 56 once rounded to even, below): 2M runs (12 buckets) 8.11–8.25 s
    against 8.57–8.72 s, peak RSS 0.81–0.92 against 0.67 GB; 10.4M records
    (55) 46.3 s against 53.7 s, peak RSS 1.20 against 1.00 GB (the target is
    1.5 GB). 64 MiB had peaked at 1.4 GB on 2M rows
    before those changes.

    Rounded up to an even count: with buckets this large, an odd count
    left one of 2 workers a whole extra bucket at the end (11 buckets: Dask
    2 workers 8.68–9.63 s; 12: 8.59–8.69 s, against 8.72–8.86 s with 22).
    Not rounded to suit a particular runner's partitions: the count decides
    which rows share an output file, and DirectRunner and DaskRunner must
    write the same bytes, so it depends on the input size alone."""
    n = min(1024, total_bytes // BUCKET_INPUT_BYTES + 1)
    return max(2, n + n % 2)


def _progress_loop(staging: str, n_files: int, stop: threading.Event, show: bool) -> None:
    if not show:
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    d = os.path.join(staging, "progress")
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} files"),
                  TextColumn("{task.fields[rows]:,} records read"), TimeElapsedColumn(), transient=True) as prog:
        task = prog.add_task("reading", total=n_files, rows=0)
        while not stop.wait(0.5):
            done, rows = manifest.progress(d)
            phase = "verifying and writing" if done >= n_files else "reading"
            prog.update(task, completed=done, rows=rows, description=phase)


def execute(job: BatchJob, s: RunSettings) -> dict:
    t0 = time.monotonic()
    now = (s.now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    files = {k: fileio.match(pats, what=input_flag(k)) for k, pats in s.inputs.items()}
    all_files = [f for fs in files.values() for f in fs]
    _one_kind_per_file(files)
    run_id = check_run_id(s.run_id) if s.run_id is not None else default_run_id(job.source, all_files, now)
    out = s.out.rstrip("/")
    staging = fileio.join(out, "_staging", run_id)
    # The run lock marks the staging area as live, so no concurrent recovery
    # deletes it; taken before the staging exists.
    run_lock = locks.run_lock(out, run_id)
    try:
        run_lock.acquire(wait=2.0)
    except locks.Busy as e:
        raise RunInProgress(f"another run with run id {run_id} is in progress (pid {e.pid or '?'})") from None
    try:
        return _execute_locked(job, s, t0, now, files, all_files, run_id, out, staging)
    finally:
        run_lock.release()


def _execute_locked(job, s, t0, now, files, all_files, run_id, out, staging) -> dict:
    recovered = commit.recover(out, live={run_id})
    if os.path.exists(staging):
        import shutil
        shutil.rmtree(staging)  # a dead attempt of this very run id
    os.makedirs(staging, exist_ok=True)
    opts = pipeline_options(s.beam_args, n_tasks=len(all_files))
    slots, by_partition = parallel_slots(opts)
    n_buckets = s.n_buckets or choose_buckets(sum(f.size for f in all_files))
    # A grouping's Dask partitions are its input's: the read step's (slots),
    # or two such collections flattened (the witness join). Salted keys for
    # 2 × slots spread buckets evenly over both (2M-row benchmark, 2 workers,
    # 22 buckets over 16 join partitions: each partition 1 or 2 buckets,
    # against 0 to 5 randomly placed).
    stage = Stage(staging=staging, now_ms=int(now.timestamp() * 1000), n_buckets=n_buckets,
                  run_columns={"run_id": run_id, "pipeline_version": __version__,
                               "rules_version": job.rules_version, "ingested_at": now.isoformat()},
                  settings=s, salts=partition_salts(n_buckets, 2 * slots) if by_partition else ())
    with new_pipeline(opts) as p:  # graph built here; its temp folder goes if this raises
        ordered = [(k, f) for k in sorted(files) for f in files[k]]
        listed = p | "Spread" >> SpreadFiles([(k, f.uri) for k, f in ordered], [f.size for _, f in ordered],
                                             slots, by_partition)
        qdate = s.logical_date or now.strftime("%Y-%m-%d")
        q_writer = WriteQuarantine(staging, "quarantine", QUARANTINE, stage.run_columns, fixed_date=qdate)
        reader = ReadFiles(job.specs, s.chunk_bytes, s.duplicates,
                           progress_dir=fileio.join(staging, "progress") if s.progress else None)
        # Read, shard and write quarantine in one step: only shard references and
        # receipts leave the task (see transforms/beam/fuse.py).
        then = {kind: StageByKey(staging, name, kind, key, stage.n_buckets, stage.salts)
                for kind, (name, key) in job.shard_keys.items()}
        then.update({Q_TAG: q_writer, STATS: StatsReceipt()})
        read = listed | "ReadAndShard" >> beam.ParDo(Fused(reader, then, rename={Q_TAG: "receipt", STATS: "receipt"}))
        read = by_tag(read, [*job.shard_keys, "receipt"], "Route")
        receipts = job.build(stage, {k: read[k] for k in job.shard_keys}) + [read["receipt"]]
        _ = (receipts | "AllReceipts" >> beam.Flatten() | "WriteReceipts" >> beam.ParDo(WriteReceipt(staging)))

    stop = threading.Event()
    prog = threading.Thread(target=_progress_loop, args=(staging, len(all_files), stop, s.progress), daemon=True)
    prog.start()
    t_run = time.monotonic()
    # Everything alive now (modules, the graph, reference tables) lives to
    # the end of the run: frozen, it is no longer rescanned by every full
    # collection the run's allocations trigger. Unfrozen after the run, so
    # a process that runs many jobs (scheduled runs, tests) can still
    # collect each run's graph once it is garbage.
    gc.freeze()
    try:
        result = p.run()
        try:
            result.wait_until_finish()
        finally:
            client = getattr(result, "client", None)  # the DaskRunner's own client
            if client is not None:
                client.close()
    finally:
        gc.unfreeze()
        stop.set()
        prog.join()
    t_pipe = time.monotonic() - t_run
    dropping = _drop_shuffle(staging)
    try:
        return _account_and_commit(job, s, t0, t_pipe, now, all_files, run_id, out, staging, stage, opts, recovered,
                                   before_commit=dropping.join)
    finally:
        dropping.join()


def _drop_shuffle(staging: str) -> threading.Thread:
    """Delete the run's shuffle shards in the background while the driver
    reads receipts and builds the manifest: nothing needs them once the
    pipeline has finished, and unlinking them (~0.8 GB on the 2M-record
    benchmark) took ~1 s of the commit's clean-up, after everything else."""
    import shutil
    t = threading.Thread(target=shutil.rmtree, args=(os.path.join(staging, "shuffle"),),
                         kwargs={"ignore_errors": True}, name="drop-shuffle", daemon=True)
    t.start()
    return t


def _account_and_commit(job, s, t0, t_pipe, now, all_files, run_id, out, staging, stage, opts, recovered,
                        before_commit: Callable[[], None]) -> dict:
    inputs, outputs = manifest.collect_receipts(staging)
    if s.logical_date is None:
        outputs = _date_quarantine_by_file(staging, outputs)
    seen = {i["uri"] for i in inputs}
    missing = [f.uri for f in all_files if f.uri not in seen]
    if missing:
        raise manifest.AccountingError(f"no read receipt for {len(missing)} input file(s), e.g. {missing[0]}")
    t_c = time.monotonic()
    owned = {(o["table"], o["date"]) for o in outputs}
    doc = manifest.build(
        run_id=run_id, source=job.source, pipeline_version=__version__, rules=job.rules,
        now=now.isoformat(), logical_date=s.logical_date, inputs=inputs, outputs=outputs,
        timings={"pipeline_s": round(t_pipe, 3), "total_s": None}, runner=runner_name(opts),
        extra={**job.extra_manifest, "n_buckets": stage.n_buckets, "recovered": recovered})
    if not doc["accounting"]["ok"]:
        bad = [f for f in doc["accounting"]["files"] if not f["ok"]]
        first = bad[0] if bad else {"uri": doc["accounting"]["rows_from_unlisted_inputs"][0]}
        raise manifest.AccountingError(
            f"counts do not add up for {first['uri']}: {first}; staging kept at {staging}")
    before_commit()
    doc["timings"]["total_s"] = round(time.monotonic() - t0, 3)
    commit.commit(out, staging, run_id, list(job.tables) + ["quarantine"], owned, doc, tag=s.commit_tag,
                  source=job.source)
    doc["timings"]["commit_s"] = round(time.monotonic() - t_c, 3)
    return doc
