"""`hexsieve stream`: continuous ingest from landing folders, in micro-batches.

Why a driver loop and not one long-running Beam streaming pipeline: on the
Python DirectRunner with `--streaming` (the only runner usable offline here),
measured with Beam 2.77, `fileio.MatchContinuously` polls fine (new files seen
within ~1 s) but `Pipeline.run()` never returns and cannot be stopped except
by killing the process, and the watermark of the unbounded source never
advances, so event-time windows never fire (nothing after 45 s). Its dedup
state is also lost on restart. So the driver watches the landing globs itself
and, for each micro-batch of new files, runs one Beam pipeline: the batch
job's `ReadFiles` (parse + quarantine), then `WindowStep`, which applies the
source's event-time windows, watermark and lateness to the new rows plus the
window state committed by the previous micro-batch, calling the same pure
verification functions as batch. Outputs, next window state, manifest and
ledger advance together through one append journal (`stream_commit`), which
is what makes kill -9 + restart lose and duplicate nothing.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from pipelines import __version__, locks, manifest, stream_commit
from pipelines.batch import OutputTable
from pipelines.ledger import Ledger, default_path
from pipelines.runner import new_pipeline, parallel_slots, pipeline_options, runner_name
from schemas.quarantine import QUARANTINE
from transforms import fileio
from transforms.beam.read import QUARANTINE as Q_TAG, STATS, ReadFiles, quarantine_part, stats_receipt
from transforms.beam.route import by_tag
from transforms.beam.windows import WindowSettings, WindowStep, Windower
from transforms.beam.write import WriteParquet, WriteReceipt
from transforms.sources import SourceSpec


@dataclass
class StreamSource:
    """What a source contributes to streaming; `windower` holds its logic.
    Imagery and sensor plug in here with their own Windower (see docs/streaming.md)."""
    name: str
    specs: dict[str, SourceSpec]
    tables: dict[str, OutputTable]
    windower: Windower
    rules: dict
    rules_version: str
    extra_manifest: dict = field(default_factory=dict)


@dataclass
class StreamSettings:
    out: str
    inputs: dict[str, list[str]]          # kind → landing globs
    now: datetime | None = None           # fixed processing time (tests, replays); default wall clock
    poll_s: float = 0.25
    max_files: int | None = None
    idle_timeout_s: float | None = None
    drain: bool | None = None             # None: drain when ended by --max-files/--idle-timeout
    batch_files: int = 64
    allowed_lateness_ms: int = 10 * 60 * 1000
    max_delay_ms: int = 5_000
    beam_args: list[str] = field(default_factory=list)
    log: object = None                    # callable(str) for one line per micro-batch
    ledger: str | None = None             # DuckDB ingest ledger; default OUT/_ledger.duckdb (as `hexsieve run`)


_LEDGER_LOCK = threading.Lock()

# Streams sharing a process (`hexsieve stream` with several sources) take
# turns at Beam: two in-process FnApiRunner pipelines (multi_threading mode,
# Beam 2.77) running at the same time now and then corrupt each other's data
# channel: the run fails inside Beam ("Invalid PaneInfoEncoding", a KeyError
# on a bundle id). Measured with the shipped 3-source sample config: 3 of 18
# runs failed without this lock, 0 of 42 with it. Small micro-batches now run
# on one in-memory worker (runner.SMALL_INPUT_BYTES); the lock covers them too,
# as concurrent in-memory runs were not shown to be safe. What taking turns
# costs in latency is in docs/streaming.md.
_ENGINE_LOCK = threading.Lock()


class _StreamLedger:
    """The shared DuckDB ledger as the stream uses it. DuckDB refuses a
    read-only and a read-write connection to one file in the same process, so
    streams running in threads of one `hexsieve stream` serialise their
    ledger calls; positive answers are cached because a file the ledger holds
    with the same bytes stays ingested, while a poll asks about it every
    interval."""

    def __init__(self, path: str):
        self.ledger = Ledger(path)
        self.path = path
        self._known: set[tuple[str, str]] = set()

    def is_current(self, uri: str, sha256: str) -> bool:
        if (uri, sha256) in self._known:
            return True
        with _LEDGER_LOCK:
            ok = self.ledger.is_current(uri, sha256)
        if ok:
            self._known.add((uri, sha256))
        return ok

    def record(self, doc: dict) -> None:
        with _LEDGER_LOCK:
            self.ledger.record(doc)


@dataclass
class Landed:
    kind: str
    uri: str
    size: int
    mtime: float
    sha256: str
    seen_at: float   # wall clock when the driver first saw it


class _Rename(beam.DoFn):
    """Quarantine parts get the micro-batch's prefix: a stream file name must
    never equal a batch file name in the same date partition."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def process(self, el):
        part, t = el
        yield f"{self.prefix}-{part}", t


class Stream:
    def __init__(self, source: StreamSource, s: StreamSettings):
        self.src, self.s = source, s
        self.out = s.out.rstrip("/")
        self.name = source.name
        self.stop = threading.Event()
        self.ledger = _StreamLedger(s.ledger or default_path(self.out))
        self._sha_cache: dict[tuple, str] = {}
        self._seen_at: dict[str, float] = {}
        self.committed: list[dict] = []
        self.files_done = 0

    # --- state -------------------------------------------------------------
    def _load(self) -> dict:
        cur = stream_commit.current(self.out, self.name)
        if cur is None:
            return {"seq": 0, "instance": uuid.uuid4().hex[:8], "consumed": {}, "state_dir": None}
        d = os.path.join(stream_commit.stream_dir(self.out, self.name), cur["state"])
        meta = json.loads(open(os.path.join(d, "stream.json"), "rb").read())
        return {**meta, "state_dir": d}

    # --- landing -----------------------------------------------------------
    def poll(self, consumed: dict) -> list[Landed]:
        """New files in arrival order (mtime, then name). Dot- and underscore-
        files are ignored, so writers land a file by renaming it into place."""
        found = []
        for kind, pats in self.s.inputs.items():
            for pat in pats:
                try:
                    res = FileSystems.match([pat])[0].metadata_list
                except Exception:
                    continue
                for m in res:
                    base = os.path.basename(m.path)
                    if base.startswith((".", "_")) or ".tmp-" in base:
                        continue
                    key = (m.path, int(m.size_in_bytes), float(m.last_updated_in_seconds))
                    if key not in self._sha_cache:
                        self._sha_cache[key] = fileio.sha256_file(m.path)
                    sha = self._sha_cache[key]
                    if consumed.get(m.path) == sha or self.ledger.is_current(m.path, sha):
                        continue
                    self._seen_at.setdefault(m.path, time.time())
                    found.append(Landed(kind, m.path, key[1], key[2], sha, self._seen_at[m.path]))
        found.sort(key=lambda f: (f.mtime, f.uri))
        return found

    # --- one micro-batch ---------------------------------------------------
    def micro_batch(self, st: dict, files: list[Landed], drain: bool) -> dict:
        t0 = time.monotonic()
        now = (self.s.now or datetime.now(timezone.utc)).astimezone(timezone.utc)
        seq = st["seq"] + 1
        run_id = f"{self.name}-stream-{st['instance']}-{seq:08d}"
        part = f"s{st['instance']}-{seq:08d}"
        staging = stream_commit.new_staging(self.out, run_id, self.name)
        state_out = os.path.join(staging, "state")
        run_columns = {"run_id": run_id, "pipeline_version": __version__,
                       "rules_version": self.src.rules_version, "ingested_at": now.isoformat()}
        ws = WindowSettings(self.s.allowed_lateness_ms, self.s.max_delay_ms, drain, int(now.timestamp() * 1000))
        opts = pipeline_options(self.s.beam_args, n_tasks=max(1, len(files)), input_bytes=sum(f.size for f in files))
        # Create's reshuffle spreads the files over workers; a micro-batch on
        # one in-memory worker has none to spread over (the reshuffle cost
        # ~40 ms of each micro-batch's Beam run).
        spread = parallel_slots(opts)[0] != 1
        with new_pipeline(opts) as p:  # its temp folder goes if building the graph raises
            read = (p | "ListFiles" >> beam.Create([(f.kind, f.uri) for f in files], reshuffle=spread)
                      | "Read" >> beam.ParDo(ReadFiles(self.src.specs)))
            kinds = list(self.src.specs)
            read = by_tag(read, [Q_TAG, STATS, *kinds], "Route", value_type=pa.Table)
            q = (read[Q_TAG] | "NameQuarantine" >> beam.Map(quarantine_part) | "Prefix" >> beam.ParDo(_Rename(part))
                 | "WriteQuarantine" >> beam.ParDo(WriteParquet(staging, "quarantine", QUARANTINE, run_columns,
                                                                fixed_date=now.strftime("%Y-%m-%d"))))
            tagged = [read[k] | f"Tag[{k}]" >> beam.Map(lambda t, k=k: (k, t)) for k in kinds]
            stepped = (tagged | "New" >> beam.Flatten() | "Gather" >> beam.combiners.ToList()
                       | "Window" >> beam.ParDo(WindowStep(self.src.windower, st["state_dir"], state_out, part, ws)))
            routed = by_tag(stepped, [*self.src.windower.outputs, "window"], "Emit")
            receipts = [q, read[STATS] | "StatsReceipts" >> beam.Map(stats_receipt), routed["window"]]
            for table in self.src.windower.outputs:
                t = self.src.tables[table]
                receipts.append(routed[table] | f"Write[{table}]" >> beam.ParDo(
                    WriteParquet(staging, table, t.schema, run_columns, date_column=t.date_column,
                                 accounted=t.accounted)))
            _ = receipts | "AllReceipts" >> beam.Flatten() | "WriteReceipts" >> beam.ParDo(WriteReceipt(staging))
        with _ENGINE_LOCK:
            t_run = time.monotonic()
            p.run().wait_until_finish()
            t_pipe = time.monotonic() - t_run

        inputs, outs = manifest.collect_receipts(staging)
        window = [o for o in outs if o["receipt"] == "window"]
        outputs = [o for o in outs if o["receipt"] == "output"]
        if len(window) != 1:
            raise manifest.AccountingError(f"micro-batch {run_id}: window step reported {len(window)} times")
        win = window[0]
        missing = {f.uri for f in files} - {i["uri"] for i in inputs}
        if missing:
            raise manifest.AccountingError(f"no read receipt for {sorted(missing)[0]}")
        cin, cout = win["carried_in"], win["carried_out"]
        carried = {u: {"in": cin.get(u, 0), "out": cout.get(u, 0)} for u in sorted(set(cin) | set(cout))}
        consumed = dict(st["consumed"])
        consumed.update({i["uri"]: i["sha256"] for i in inputs})
        arrival = {f.uri: f for f in files}
        doc = manifest.build(
            run_id=run_id, source=self.name, pipeline_version=__version__, rules=self.src.rules,
            now=now.isoformat(), logical_date=None, inputs=inputs, outputs=outputs,
            timings={"pipeline_s": round(t_pipe, 3), "total_s": None}, runner=runner_name(opts),
            carried=carried,
            extra={**self.src.extra_manifest, "mode": "stream",
                   "stream": {"seq": seq, "instance": st["instance"], "drained": drain,
                              "arrival_order": [f.uri for f in files],
                              "seen_at": {u: f.seen_at for u, f in arrival.items()},
                              "watermarks": win["watermarks"], "late": win["late"],
                              "late_reason": win["late_reason"],
                              "allowed_lateness_ms": self.s.allowed_lateness_ms,
                              "max_delay_ms": self.s.max_delay_ms,
                              "held_rows": sum(cout.values())}})
        if not doc["accounting"]["ok"]:
            bad = [f for f in doc["accounting"]["files"] if not f["ok"]]
            raise manifest.AccountingError(f"counts do not add up in {run_id}: {bad[:1] or doc['accounting']}; "
                                           f"staging kept at {staging}")
        fileio.write_bytes(os.path.join(state_out, "stream.json"), json.dumps(
            {"seq": seq, "instance": st["instance"], "consumed": consumed}, sort_keys=True).encode())
        doc["timings"]["total_s"] = round(time.monotonic() - t0, 3)
        doc["stream"]["committed_at"] = time.time()
        with locks.commit_lock(self.out):
            stream_commit.commit(self.out, staging, self.name, seq, doc, self.ledger)
        return {"seq": seq, "instance": st["instance"], "consumed": consumed,
                "state_dir": os.path.join(stream_commit.stream_dir(self.out, self.name), f"state-{seq:08d}"),
                "doc": doc}

    # --- the loop ----------------------------------------------------------
    def run(self) -> dict:
        own = locks.Lock(os.path.join(locks.lock_dir(self.out), f"stream-{self.name}.lock"))
        try:
            own.acquire()
        except locks.Busy as e:
            raise RuntimeError(f"another `hexsieve stream` for {self.name} is running on {self.out} ({e})") from None
        try:
            return self._run()
        finally:
            own.release()

    def _run(self) -> dict:
        with locks.commit_lock(self.out):
            recovered = stream_commit.recover(self.out, self.name, self.ledger)
            with _LEDGER_LOCK:  # a stream killed after its manifest, before its ledger row
                self.ledger.ledger.sync(self.out)
        st = self._load()
        log = self.s.log or (lambda m: None)
        for r in recovered:
            log(r)
        last_new = time.monotonic()
        ended_by_limit = False
        while not self.stop.is_set():
            files = self.poll(st["consumed"])
            if self.s.max_files is not None:
                files = files[:max(0, self.s.max_files - self.files_done)]
            files = files[:self.s.batch_files]
            if files:
                st = self.micro_batch(st, files, drain=False)
                self.files_done += len(files)
                self._report(st["doc"], log)
                last_new = time.monotonic()
                if self.s.max_files is not None and self.files_done >= self.s.max_files:
                    ended_by_limit = True
                    break
                continue
            if self.s.idle_timeout_s is not None and time.monotonic() - last_new >= self.s.idle_timeout_s:
                ended_by_limit = True
                break
            self.stop.wait(self.s.poll_s)
        drain = self.s.drain if self.s.drain is not None else ended_by_limit
        if drain and not self.stop.is_set():
            st = self.micro_batch(st, [], drain=True)
            self._report(st["doc"], log)
        return {"files": self.files_done, "micro_batches": len(self.committed), "recovered": recovered,
                "runs": [d["run_id"] for d in self.committed], "stopped": self.stop.is_set(), "drained": drain}

    def _report(self, doc: dict, log) -> None:
        self.committed.append(doc)
        rows = sum(o["rows"] for o in doc["outputs"])
        s = doc["stream"]
        log(f"{doc['run_id']}: {len(doc['inputs'])} file(s) in, {rows:,} rows out, {s['held_rows']:,} held, "
            f"late {sum(s['late'].values())}, join watermark {_fmt(s['watermarks']['join'])}"
            + (" (drained)" if s["drained"] else ""))


def _fmt(ms: int) -> str:
    if ms <= -(1 << 61) or ms >= (1 << 61):
        return "-inf" if ms < 0 else "+inf"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds")


def install_signals(*streams: Stream) -> None:
    """First SIGINT/SIGTERM: finish the running micro-batch, then stop. A
    second one stops at once (safe: the journal makes any cut recoverable)."""
    def handler(signum, frame):
        if any(s.stop.is_set() for s in streams):
            raise KeyboardInterrupt
        for s in streams:
            s.stop.set()
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
