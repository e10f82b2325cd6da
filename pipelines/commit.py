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
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil

from transforms import fileio

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


def plan(out: str, staging: str, tables: list[str], dates: set[str]) -> list[dict]:
    """One swap per (table, date) the run owns; an owned partition with no new
    rows is emptied, so re-running a date never leaves rows of an older run."""
    ops = []
    for table in sorted(tables):
        for d in sorted(dates):
            ops.append({"table": table, "date": d,
                        "src": os.path.join(staging, "data", table, f"date={d}"),
                        "dst": os.path.join(out, table, f"date={d}")})
    return ops


def write_journal(staging: str, ops: list[dict], manifest: dict) -> None:
    fileio.write_bytes(os.path.join(staging, JOURNAL),
                       json.dumps({"ops": ops, "manifest": manifest}, sort_keys=True).encode())


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


def commit(out: str, staging: str, run_id: str, tables: list[str], dates: set[str], manifest: dict) -> str:
    ops = plan(out, staging, tables, dates)
    write_journal(staging, ops, manifest)
    apply(ops, os.path.join(staging, "trash"), run_id)
    return finish(staging, out, run_id, manifest)


def recover(out: str, live: set[str] = frozenset()) -> list[str]:
    """Finish commits that crashed after their journal was written; delete the
    staging areas of runs that died before committing. `live` run ids are kept."""
    root = os.path.join(out, "_staging")
    done = []
    if not os.path.isdir(root):
        return done
    for run_id in sorted(os.listdir(root)):
        if run_id in live:
            continue
        st = os.path.join(root, run_id)
        j = os.path.join(st, JOURNAL)
        if os.path.exists(j):
            try:
                doc = json.loads(open(j, "rb").read())
            except ValueError:
                doc = None  # journal itself half-written: the commit never started
            if doc is not None:
                apply(doc["ops"], os.path.join(st, "trash"), run_id)
                finish(st, out, run_id, doc["manifest"])
                done.append(f"completed commit of {run_id}")
                continue
        shutil.rmtree(st, ignore_errors=True)
        done.append(f"removed staging of dead run {run_id}")
    return done
