"""Atomic publication of a run's staged partitions.

A run writes everything under `OUT/_staging/<run_id>/data/<table>/date=D/`.
The driver then writes a commit journal (the list of partition swaps) and
performs the swaps; the journal makes the commit restartable: if the process
dies half-way, the next run replays the journal before doing anything else,
so the published state is always either the old or the new one per
partition. On local disks each swap is one `renameat2(RENAME_EXCHANGE)` call,
so a reader sees the old or the new partition, never a mix. Object stores
have no atomic directory rename; there the swap moves files one by one
(documented in the README).

Scheduled runs pass a `tag` (their logical date): then a partition is shared
by every date whose rows fall in it (late or future event times), each file
is named after the date that wrote it, and a run replaces only its own
date's files in each partition, atomically, keeping the others (hard links).
Without a tag, a `batch` run owns its own source's files in the date
partitions it writes (`plan_source`); other sources' files there are kept.

All commits, journal replays and prunes of one output root are serialised by
`OUT/_locks/commit.lock`; a staging area is only ever cleaned by a process
that holds its run's lock, so the staging of a live run is never touched.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import shutil

from pipelines import locks
from transforms import fileio, hooks

JOURNAL = "COMMIT.json"
_RENAME_EXCHANGE = 2
_libc = None


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two paths (Linux renameat2); False when unsupported."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = _libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    AT_FDCWD = -100
    rc = fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def tag_prefix(tag: str) -> str:
    """File-name prefix of the files a scheduled run publishes. `tag` is
    "<source>.<YYYY-MM-DD>" (or a bare date): the source is part of it because
    sources share the quarantine table, so one source's re-run of a date must
    not replace another source's files of that date."""
    name, _, day = tag.rpartition(".")
    return f"part-{name + '.' if name else ''}d{day.replace('-', '')}-"


def plan_tagged(out: str, staging: str, tables: list[str], tag: str, manifest: dict) -> list[dict]:
    """Swaps for a run that owns only its date's files: every partition that
    gets new files or holds files of an earlier run of the same date.

    Staged files are renamed to `part-<source>.d<date>-<content hash>-<part>.parquet`
    (manifest paths follow): the date says whose they are, the content hash
    makes a stale directory listing fail loudly instead of mixing two runs.
    Files of other dates are hard-linked into the staged partition, so the
    swap publishes old and new together."""
    prefix = tag_prefix(tag)
    return _plan_owned(out, staging, tables, prefix, prefix, manifest, owned=None)


def plan_source(out: str, staging: str, tables: list[str], source: str, owned: set[tuple[str, str]],
                manifest: dict) -> list[dict]:
    """Swaps for a `batch` run: it is authoritative for its own source's rows
    in the (table, date) partitions it writes, and nothing else: quarantine
    rows written to a date do not make the run the owner of that date's
    validated rows. Other sources' files in
    a shared partition (the quarantine table) are kept by hard links, so
    running witness and sensor batches into one output root loses nothing."""
    prefix = f"part-{source}."
    return _plan_owned(out, staging, tables, prefix, f"{prefix}b", manifest, owned=owned)


def _plan_owned(out: str, staging: str, tables: list[str], mine: str, new_prefix: str, manifest: dict,
                owned: set[tuple[str, str]] | None) -> list[dict]:
    """Files named `mine…` in a touched partition are replaced; all others kept.
    `owned=None`: touch partitions holding such files anywhere (a dated run);
    else touch only those (table, date) partitions (a batch run)."""
    outputs = manifest.get("outputs", [])
    h = hashlib.sha256("".join(sorted(o["sha256"] for o in outputs)).encode()).hexdigest()[:8]
    for o in outputs:
        d, name = os.path.split(o["path"])
        if name.startswith(new_prefix):
            continue
        new = f"{new_prefix}{h}-{name.removeprefix('part-')}"
        os.rename(os.path.join(staging, "data", o["path"]), os.path.join(staging, "data", d, new))
        o["path"] = f"{d}/{new}"
    ops = []
    for table in sorted(tables):
        parts = set()
        sd, od = os.path.join(staging, "data", table), os.path.join(out, table)
        if os.path.isdir(sd):
            parts |= {n[5:] for n in os.listdir(sd) if n.startswith("date=")}
        if os.path.isdir(od):
            for n in os.listdir(od):
                if n.startswith("date=") and os.path.isdir(os.path.join(od, n)) and \
                        (owned is None or (table, n[5:]) in owned) and \
                        any(f.startswith(mine) for f in os.listdir(os.path.join(od, n))):
                    parts.add(n[5:])
        for d in sorted(parts):
            src, dst = os.path.join(sd, f"date={d}"), os.path.join(od, f"date={d}")
            os.makedirs(src, exist_ok=True)
            if os.path.isdir(dst):
                for f in sorted(os.listdir(dst)):
                    if f.endswith(".parquet") and not f.startswith(mine):
                        try:
                            os.link(os.path.join(dst, f), os.path.join(src, f))
                        except OSError:
                            shutil.copy2(os.path.join(dst, f), os.path.join(src, f))
            ops.append({"table": table, "date": d, "src": src, "dst": dst})
    return ops


def write_journal(staging: str, ops: list[dict], manifest: dict, token: str | None = None) -> None:
    fileio.write_bytes(os.path.join(staging, JOURNAL),
                       json.dumps({"ops": ops, "manifest": manifest, "token": token}, sort_keys=True).encode())


MARKER = "_committed_by"  # not *.parquet: invisible to readers' globs


def _owner(path: str) -> str | None:
    try:
        with open(os.path.join(path, MARKER)) as f:
            return f.read().strip()
    except OSError:
        return None


def _has_data(path: str) -> bool:
    return os.path.isdir(path) and any(n.endswith(".parquet") for n in os.listdir(path))


def apply(ops: list[dict], trash: str, run_id: str) -> None:
    """Perform (or finish) each swap. Idempotent: safe to replay after a crash
    at any point, because each published partition names the run that put it
    there (a marker file readers' `*.parquet` globs never match)."""
    os.makedirs(trash, exist_ok=True)
    for i, op in enumerate(ops):
        src, dst = op["src"], op["dst"]
        old = os.path.join(trash, f"{i:06d}")
        if _owner(dst) != run_id:
            if not os.path.exists(src):
                os.makedirs(src, exist_ok=True)  # owned date without rows: publish empty
            with open(os.path.join(src, MARKER), "w") as f:
                f.write(run_id)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.exists(dst) and _is_local(dst) and _exchange(src, dst):
                pass  # src now holds the previous partition
            else:
                if os.path.exists(dst):
                    os.rename(dst, old)
                os.rename(src, dst)
        if os.path.exists(src):
            os.rename(src, old) if not os.path.exists(old) else shutil.rmtree(src)
        if os.path.isdir(dst) and not _has_data(dst):
            shutil.rmtree(dst)  # empty partition: no folder at all
        if i == 0 and len(ops) > 1:
            hooks.pause("commit")


def finish(staging: str, out: str, run_id: str, manifest: dict) -> str:
    """Publish the manifest (the commit point for readers of _runs) and clean up.

    Every output the manifest lists must now be in place; otherwise the
    commit is reported as broken rather than silently short."""
    missing = [o["path"] for o in manifest.get("outputs", [])
               if not os.path.exists(os.path.join(out, o["path"]))]
    if missing:
        raise RuntimeError(f"commit incomplete: {len(missing)} output file(s) missing, e.g. {missing[0]}")
    path = os.path.join(out, "_runs", f"{run_id}.json")
    fileio.write_bytes(path, json.dumps(manifest, indent=2, sort_keys=True).encode())
    shutil.rmtree(staging, ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(staging))  # leave no empty _staging behind
    except OSError:
        pass
    return path


def _token(run_id: str, ops: list[dict], manifest: dict) -> str:
    """What a published partition's marker says: the run plus a hash of what
    it publishes, so a re-run under the same run id with different content
    still swaps, while a replay of the same commit recognises its own work."""
    h = hashlib.sha256(json.dumps([ops, [o.get("sha256") for o in manifest.get("outputs", [])]],
                                  sort_keys=True).encode()).hexdigest()[:12]
    return f"{run_id}:{h}"


def commit(out: str, staging: str, run_id: str, tables: list[str], owned: set[tuple[str, str]], manifest: dict,
           tag: str | None = None, source: str | None = None) -> str:
    with locks.commit_lock(out):
        # A dead run's journal was planned against the state before it: finish it first.
        _recover_locked(out, live={run_id}, journals_only=True)
        if tag:
            ops = plan_tagged(out, staging, tables, tag, manifest)
            manifest["committed_partitions"] = sorted(f"{o['table']}/date={o['date']}" for o in ops)
        elif source:
            ops = plan_source(out, staging, tables, source, owned, manifest)
            manifest["committed_partitions"] = sorted(f"{o['table']}/date={o['date']}" for o in ops)
        else:
            raise ValueError("commit needs a tag (scheduled run) or a source (batch run)")
        token = _token(run_id, ops, manifest)
        write_journal(staging, ops, manifest, token)
        hooks.pause("journal")
        apply(ops, os.path.join(staging, "trash"), token)
        return finish(staging, out, run_id, manifest)


def recover(out: str, live: set[str] = frozenset()) -> list[str]:
    """Finish commits that crashed after their journal was written; delete the
    staging areas of runs that died before committing, and their temporary
    and lock files. Staging areas of live runs (their run lock is held, or
    listed in `live`) are kept."""
    if not os.path.isdir(os.path.join(out, "_staging")) and not os.path.isdir(locks.lock_dir(out)) \
            and not os.path.isdir(os.path.join(out, "_runs")):
        return []
    with locks.commit_lock(out):
        return _recover_locked(out, live)


def _recover_locked(out: str, live: set[str], journals_only: bool = False) -> list[str]:
    root = os.path.join(out, "_staging")
    done = []
    for run_id in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        st = os.path.join(root, run_id)
        if run_id in live or not os.path.isdir(st):
            continue
        if os.path.exists(os.path.join(st, "STREAMING")):
            continue  # a streaming micro-batch: own append journal, recovered by `hexsieve stream`
        j = os.path.join(st, JOURNAL)
        if journals_only and not os.path.exists(j):
            continue
        lk = locks.run_lock(out, run_id)
        if not locks.try_lock(lk):
            continue  # its run is alive
        try:
            if os.path.exists(j):
                try:
                    doc = json.loads(open(j, "rb").read())
                except ValueError:
                    doc = None  # journal itself half-written: the commit never started
                if doc is not None:
                    apply(doc["ops"], os.path.join(st, "trash"), doc.get("token") or run_id)
                    finish(st, out, run_id, doc["manifest"])
                    done.append(f"completed commit of {run_id}")
                    continue
            shutil.rmtree(st, ignore_errors=True)
            done.append(f"removed staging of dead run {run_id}")
        finally:
            lk.release()
    if journals_only:
        return done
    try:
        os.rmdir(root)
    except OSError:
        pass
    runs = os.path.join(out, "_runs")
    for n in sorted(os.listdir(runs)) if os.path.isdir(runs) else []:
        if ".tmp-" in n:  # a manifest write cut short; manifests are only written under this lock
            os.unlink(os.path.join(runs, n))
            done.append(f"removed temporary file _runs/{n}")
    ld = locks.lock_dir(out)
    for n in sorted(os.listdir(ld)) if os.path.isdir(ld) else []:
        if n.endswith(".lock") and n != "commit.lock":
            lk = locks.Lock(os.path.join(ld, n))
            if locks.try_lock(lk):
                lk.release()  # unlinks the stale file of a dead holder
    return done
