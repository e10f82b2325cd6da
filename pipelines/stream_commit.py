"""Append-only, restartable commit of one streaming micro-batch.

Batch owns whole date partitions and swaps them; a stream must never replace
a partition (batch files and earlier windows live there), so it *adds* files,
each by one rename from `OUT/_staging/<run_id>/data/` into
`OUT/<table>/date=D/`. A reader sees a file entirely or not at all.

The journal (`APPEND.json`, written atomically) is the commit point. It lists
the renames, the next window state and the manifest; applying it is
idempotent, so after a crash at any point `recover` replays it: outputs,
state, manifest and ledger all advance together, or none do (no journal ⇒ the
staging is discarded and the same files are read again from the same state).
"""
from __future__ import annotations

import json
import os
import shutil

from transforms import fileio, hooks

JOURNAL = "APPEND.json"
MARKER = "STREAMING"   # batch's commit.recover leaves staging dirs holding this alone


def stream_dir(out: str, name: str) -> str:
    return os.path.join(out, "_stream", name)


def current(out: str, name: str) -> dict | None:
    p = os.path.join(stream_dir(out, name), "CURRENT")
    if not os.path.exists(p):
        return None
    return json.loads(open(p, "rb").read())


def new_staging(out: str, run_id: str, name: str) -> str:
    st = os.path.join(out, "_staging", run_id)
    if os.path.exists(st):
        shutil.rmtree(st)
    os.makedirs(st)
    with open(os.path.join(st, MARKER), "w") as f:
        f.write(name)
    return st


def commit(out: str, staging: str, name: str, seq: int, manifest: dict, ledger) -> str:
    ops = [{"src": os.path.join(staging, "data", o["path"]), "dst": os.path.join(out, o["path"])}
           for o in manifest["outputs"]]
    journal = {"ops": ops, "name": name, "seq": seq,
               "state_src": os.path.join(staging, "state"),
               "state_dst": os.path.join(stream_dir(out, name), f"state-{seq:08d}"),
               "manifest": manifest}
    fileio.write_bytes(os.path.join(staging, JOURNAL), json.dumps(journal, sort_keys=True).encode())
    return apply(out, staging, journal, ledger)


def apply(out: str, staging: str, j: dict, ledger) -> str:
    for i, op in enumerate(j["ops"]):
        if os.path.exists(op["src"]):
            os.makedirs(os.path.dirname(op["dst"]), exist_ok=True)
            os.replace(op["src"], op["dst"])
            if i == 0:
                hooks.pause("stream-commit")  # tests: killed half-way through publishing
        elif not os.path.exists(op["dst"]):
            raise RuntimeError(f"commit incomplete: {op['dst']} is neither staged nor published")
    if os.path.exists(j["state_src"]):
        if os.path.exists(j["state_dst"]):
            shutil.rmtree(j["state_dst"])
        os.replace(j["state_src"], j["state_dst"])
    sd = stream_dir(out, j["name"])
    fileio.write_bytes(os.path.join(sd, "CURRENT"), json.dumps(
        {"seq": j["seq"], "state": os.path.basename(j["state_dst"])}).encode())
    doc = j["manifest"]
    path = os.path.join(out, "_runs", f"{doc['run_id']}.json")
    fileio.write_bytes(path, json.dumps(doc, indent=2, sort_keys=True).encode())
    hooks.pause("stream-ledger")  # tests: killed after the manifest, before the ledger
    if ledger is not None and doc.get("inputs"):
        ledger.record(doc)
    shutil.rmtree(staging, ignore_errors=True)
    for n in os.listdir(sd):  # older states are superseded once CURRENT moved
        if n.startswith("state-") and n != os.path.basename(j["state_dst"]):
            shutil.rmtree(os.path.join(sd, n), ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(staging))
    except OSError:
        pass
    return path


def recover(out: str, name: str, ledger) -> list[str]:
    """Finish this stream's journaled commits; drop its uncommitted staging."""
    root = os.path.join(out, "_staging")
    done = []
    if not os.path.isdir(root):
        return done
    for run_id in sorted(os.listdir(root)):
        st = os.path.join(root, run_id)
        try:
            owner = open(os.path.join(st, MARKER)).read().strip()
        except OSError:
            continue
        if owner != name:
            continue
        jp = os.path.join(st, JOURNAL)
        if os.path.exists(jp):
            try:
                j = json.loads(open(jp, "rb").read())
            except ValueError:
                j = None
            if j is not None:
                apply(out, st, j, ledger)
                done.append(f"completed commit of {run_id}")
                continue
        shutil.rmtree(st, ignore_errors=True)
        done.append(f"discarded uncommitted micro-batch {run_id}")
    return done
