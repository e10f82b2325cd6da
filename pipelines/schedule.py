"""Scheduled runs: `hexsieve run --config F --date D`, the way cron calls it.

A date's inputs are processed together (witnesses in one file join beacons
in another), so a run of date D either does nothing (every landing file of D
is in the ledger with the same sha256) or re-processes all of D's files and
atomically replaces D's files in every partition they touch. The date lock
refuses a concurrent run of the same source and date; the commit journal,
`commit.recover()` and `Ledger.sync()` make a run killed at any point
harmless to the published state and complete on the next run.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import re
import shutil
from dataclasses import dataclass
from datetime import date as Date, datetime, timedelta, timezone

from pipelines import commit, locks
from pipelines.config import Config, SourceConfig, fill
from pipelines.ledger import Ledger
from transforms import errors, fileio, hooks


class RunFailed(Exception):
    """A scheduled run did not commit; the message is one line for cron logs."""

    exit_code = 1


class RunBusy(RunFailed):
    exit_code = 75  # EX_TEMPFAIL: an orchestrator may retry later


@dataclass
class Outcome:
    source: str
    date: str
    status: str            # committed | noop | skipped
    message: str
    run_id: str | None = None
    manifest: dict | None = None


def one_line(e: BaseException) -> str:
    """The root cause of an exception as one line (`transforms.errors.one_line`)."""
    return errors.one_line(e, plain=(fileio.InputError, RunFailed))


def landing_files(src: SourceConfig, day: Date) -> tuple[dict[str, list[fileio.FileInfo]], list[str]]:
    """Files of one date per input kind; a pattern matching nothing is fine
    here (the caller decides whether an empty date is an error)."""
    from apache_beam.io.filesystems import FileSystems
    found: dict[str, list[fileio.FileInfo]] = {}
    patterns = []
    for kind, templates in src.inputs.items():
        files: dict[str, fileio.FileInfo] = {}
        for t in templates:
            pat = fill(t, day)
            patterns.append(pat)
            try:
                res = FileSystems.match([pat])[0]
            except Exception as e:
                raise RunFailed(f"cannot list {pat}: {one_line(e)}") from None
            for m in res.metadata_list:
                if os.path.basename(m.path).startswith((".", "_")):
                    continue
                files[m.path] = fileio.FileInfo(m.path, int(m.size_in_bytes))
            skipped = fileio.unlisted_entry(pat, set(files))
            if skipped:
                raise RunFailed(f"landing entry {skipped[0]} {skipped[1]}; remove it or narrow the glob {pat}")
        found[kind] = sorted(files.values(), key=lambda f: f.uri)
    return found, patterns


def _sha(uri: str) -> str | None:
    if fileio.is_special(uri):
        return None
    try:
        return fileio.sha256_file(uri)
    except Exception:  # unreadable: the read step quarantines it with the reason
        return None


def make_job(cfg: Config, src: SourceConfig):
    """Call the source's job factory; None when its pipeline isn't installed."""
    from pipelines.config import SOURCES
    sd = SOURCES[src.name]
    try:
        mod = importlib.import_module(sd.module)
    except ModuleNotFoundError as e:
        if e.name == sd.module:
            return None
        raise
    factory = getattr(mod, sd.factory, None)
    if factory is None:
        return None
    kwargs = {**src.refs, **src.options}
    params = inspect.signature(factory).parameters
    if "rules_file" in params or any(p.kind == p.VAR_KEYWORD for p in params.values()):
        kwargs["rules_file"] = cfg.rules_file
    try:
        return factory(**kwargs)
    except TypeError as e:
        if "argument" in str(e):
            raise RunFailed(f"[sources.{src.name}] does not fit {sd.module}.{sd.factory}: {e}") from None
        raise
    except (fileio.InputError, ValueError) as e:  # bad reference file or rule override
        raise RunFailed(str(e).splitlines()[0] if str(e) else type(e).__name__) from None


def run_source(cfg: Config, src: SourceConfig, day: Date, *, now: datetime | None = None,
               force: bool = False, allow_missing: bool = False, allow_empty: bool = False,
               beam_args: list[str] | None = None, n_buckets: int | None = None,
               progress: bool = False) -> Outcome:
    d = day.isoformat()
    out = cfg.out
    try:
        lock = locks.date_lock(out, src.name, d).acquire()
    except locks.Busy as e:
        raise RunBusy(f"another run of {src.name} {d} is in progress (pid {e.pid or '?'})") from None
    try:
        return _run_locked(cfg, src, day, d, now, force, allow_missing, allow_empty, beam_args or [],
                           n_buckets, progress)
    finally:
        lock.release()


def _run_locked(cfg, src, day, d, now, force, allow_missing, allow_empty, beam_args, n_buckets, progress) -> Outcome:
    from pipelines.batch import RunInProgress, RunSettings, execute
    from pipelines.manifest import AccountingError
    out = cfg.out
    os.makedirs(out, exist_ok=True)
    commit.recover(out)              # finish or discard what dead runs left
    ledger = Ledger(cfg.ledger)
    ledger.sync(out)                 # a run that died after its commit, before its ledger write
    files, patterns = landing_files(src, day)
    every = [(k, f) for k in sorted(files) for f in files[k]]
    if not every:
        if allow_empty:
            return Outcome(src.name, d, "noop", f"no landing files for {src.name} on {d}; nothing to do")
        raise RunFailed(f"no landing files for {src.name} on {d} (looked for {', '.join(patterns)})")
    # Built before the no-op check: a broken config or reference table is
    # reported on every run, not only on days with new files.
    job = make_job(cfg, src)
    if job is None:
        return Outcome(src.name, d, "skipped", f"source {src.name} is configured but its pipeline "
                                               f"is not installed; skipped")
    shas = {f.uri: _sha(f.uri) for _, f in every}
    if not force and all(ledger.is_current(f.uri, shas[f.uri]) for _, f in every):
        return Outcome(src.name, d, "noop",
                       f"all {len(every)} landing file(s) of {src.name} {d} already ingested; nothing to do")
    present = {f.uri for _, f in every}
    gone = [r["uri"] for r in ledger.for_date(src.name, d) if r["uri"] not in present]
    if gone and not allow_missing:
        raise RunFailed(f"{gone[0]} was ingested for {src.name} {d} but is no longer in the landing area "
                        f"({len(gone)} file(s)); re-processing the date would drop its rows "
                        f"(restore it, or pass --allow-missing)")
    duplicates: dict[str, str] = {}
    first_of: dict[str, str] = {}
    for _, f in every:
        sha = shas[f.uri]
        if not sha:
            continue
        if sha in first_of:
            duplicates[f.uri] = first_of[sha]
            continue
        first_of[sha] = f.uri
        twin = ledger.twin(sha, f.uri)
        if twin is not None and twin["logical_date"] != d and twin["uri"] not in present:
            duplicates[f.uri] = f"{twin['uri']} (ingested for {twin['logical_date']} by {twin['run_id']})"
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    h = hashlib.sha256("|".join(f"{f.uri}:{shas[f.uri]}" for _, f in every).encode()).hexdigest()[:8]
    run_id = f"{src.name}-{d}-{now.strftime('%Y%m%dT%H%M%SZ')}-{h}"
    settings = RunSettings(out=out, inputs={k: [f.uri for f in fs] for k, fs in files.items()}, run_id=run_id,
                           now=now, logical_date=d, beam_args=beam_args, n_buckets=n_buckets,
                           progress=progress, commit_tag=f"{src.name}.{d}", duplicates=duplicates)
    try:
        doc = execute(job, settings)
    except BaseException as e:
        msg = one_line(e) if not isinstance(e, KeyboardInterrupt) else "interrupted"
        try:
            ledger.record_failure(src.name, d, run_id, [{"uri": f.uri, "kind": k, "size": f.size,
                                                         "sha256": shas[f.uri]} for k, f in every], msg)
        except Exception:
            pass
        if not isinstance(e, AccountingError):
            try:
                commit.recover(out)  # our staging: nothing of it was published
            except Exception:
                pass  # e.g. still no space: the next run recovers
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        if isinstance(e, RunInProgress):
            raise RunBusy(str(e)) from None
        if isinstance(e, AccountingError):
            raise RunFailed(f"accounting check failed, nothing committed: {msg}") from None
        if os.path.exists(os.path.join(out, "_staging", run_id, commit.JOURNAL)):
            state = "the commit was interrupted after its journal; the next run completes it"
        elif os.path.exists(os.path.join(out, "_runs", f"{run_id}.json")):
            state = "recovery completed the commit"
        else:
            state = "nothing committed, previous state intact"
        raise RunFailed(f"{msg}; {state}") from None
    hooks.pause("ledger")
    ledger.record(doc)
    pruned = prune(out, cfg.retention_days, day) if cfg.retention_days else []
    c = doc["counts"]["by_table"]
    nrec = sum(i["records"] for i in doc["inputs"])
    q = sum(v.get("quarantined", 0) for v in c.values())
    msg = (f"committed {run_id}: {len(doc['inputs'])} file(s), {nrec:,} records, {q:,} quarantined, "
           f"{len(doc.get('committed_partitions', []))} partition(s) replaced")
    if duplicates:
        msg += f", {len(duplicates)} duplicate file(s) quarantined"
    if pruned:
        msg += f", retention removed {len(pruned)} item(s)"
    probs = (doc.get("references") or {}).get("registry_problems") or []
    if probs:
        p0 = probs[0]
        msg += (f"; registry {doc['references'].get('registry')}: {len(probs)} problem(s), first: "
                f"row {p0.get('row')}: {p0.get('problem')}")
    return Outcome(src.name, d, "committed", msg, run_id, doc)


def prune(out: str, days: int, as_of: Date) -> list[str]:
    """Remove partitions and run manifests older than `days` before `as_of`.

    A partition disappears in one rename (readers see it or not); only
    directories carrying the commit marker are touched, so nothing hexsieve
    did not publish is deleted. The ledger keeps its history."""
    cutoff = as_of - timedelta(days=days)
    removed: list[str] = []
    if not os.path.isdir(out):
        return removed
    with locks.commit_lock(out):
        trash = os.path.join(out, "_staging", f"prune-{os.getpid()}")
        for table in sorted(os.listdir(out)):
            tdir = os.path.join(out, table)
            if table.startswith(("_", ".")) or not os.path.isdir(tdir):
                continue
            for part in sorted(os.listdir(tdir)):
                if not part.startswith("date="):
                    continue
                try:
                    pd = Date.fromisoformat(part[5:])
                except ValueError:
                    continue  # date=unknown and the like are never expired
                pdir = os.path.join(tdir, part)
                if pd < cutoff and os.path.exists(os.path.join(pdir, commit.MARKER)):
                    os.makedirs(trash, exist_ok=True)
                    os.rename(pdir, os.path.join(trash, f"{table}-{part}"))
                    removed.append(f"{table}/{part}")
        runs = os.path.join(out, "_runs")
        import json
        for n in sorted(os.listdir(runs)) if os.path.isdir(runs) else []:
            if not n.endswith(".json"):
                continue
            try:
                doc = json.loads(open(os.path.join(runs, n), "rb").read())
                ref = doc.get("logical_date") or (doc.get("now") or "")[:10]
                rd = Date.fromisoformat(ref)
            except (OSError, ValueError, TypeError):
                continue
            if rd < cutoff:
                os.unlink(os.path.join(runs, n))
                removed.append(f"_runs/{n}")
        shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rmdir(os.path.join(out, "_staging"))
        except OSError:
            pass
    return removed
