"""Run manifest: what went in, what came out, and proof the counts add up."""
from __future__ import annotations

import json
import os
from collections import Counter, defaultdict

from transforms import fileio


class AccountingError(Exception):
    """Records read ≠ valid + invalid + quarantined for some input file."""


def collect_receipts(staging: str) -> tuple[list[dict], list[dict]]:
    d = os.path.join(staging, "receipts")
    inputs, outputs = [], []
    if not os.path.isdir(d):
        return inputs, outputs
    for name in sorted(os.listdir(d)):
        if not name.endswith(".json"):
            continue
        r = json.loads(fileio.read_bytes(os.path.join(d, name), decompress=False))
        (inputs if r["receipt"] == "input" else outputs).append(r)
    inputs.sort(key=lambda r: (r["kind"], r["uri"]))
    outputs.sort(key=lambda r: r["path"])
    return inputs, outputs


def account(inputs: list[dict], outputs: list[dict], carried: dict | None = None) -> dict:
    """Per input file: records = valid + invalid + quarantined, else failure.

    `carried` (streaming) maps a file to its rows held in window state before
    (`in`) and after (`out`) the run: then records + in = valid + invalid +
    quarantined + out, for files read now and files whose held rows were
    written now."""
    got: dict[str, Counter] = defaultdict(Counter)
    for o in outputs:
        for uri, c in o["per_source"].items():
            got[uri].update(c)
    carried = carried or {}
    files, ok = [], True
    listed = {i["uri"] for i in inputs}
    rows = [(i["uri"], i["kind"], i["records"]) for i in inputs]
    rows += [(u, None, 0) for u in sorted(set(carried) - listed)]
    for uri, kind, records in rows:
        c = got.get(uri, Counter())
        row = {"uri": uri, "kind": kind, "records": records,
               "valid": c.get("valid", 0), "invalid": c.get("invalid", 0),
               "quarantined": c.get("quarantined", 0)}
        held = carried.get(uri)
        if held is not None:
            row["held_before"], row["held_after"] = held.get("in", 0), held.get("out", 0)
        row["ok"] = row["records"] + row.get("held_before", 0) == \
            row["valid"] + row["invalid"] + row["quarantined"] + row.get("held_after", 0)
        ok &= row["ok"]
        files.append(row)
    unknown = sorted(set(got) - listed - set(carried))
    if unknown:
        ok = False
    return {"ok": ok, "files": files, "rows_from_unlisted_inputs": unknown}


def totals(outputs: list[dict]) -> dict:
    per_table: dict[str, Counter] = defaultdict(Counter)
    reasons: dict[str, Counter] = defaultdict(Counter)
    for o in outputs:
        for c in o["per_source"].values():
            per_table[o["table"]].update(c)
        per_table[o["table"]].update(o.get("totals", {}))  # derived (unaccounted) tables
        reasons[o["table"]].update(o.get("reasons", {}))
    return {"by_table": {t: dict(sorted(c.items())) for t, c in sorted(per_table.items())},
            "reasons": {t: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
                        for t, c in sorted(reasons.items()) if c}}


def build(*, run_id: str, source: str, pipeline_version: str, rules: dict, now: str,
          logical_date: str | None, inputs: list[dict], outputs: list[dict], timings: dict,
          runner: str, extra: dict | None = None, carried: dict | None = None) -> dict:
    acc = account(inputs, outputs, carried)
    doc = {
        "run_id": run_id, "source": source, "pipeline_version": pipeline_version,
        "now": now, "logical_date": logical_date, "runner": runner,
        "rules": rules,
        "inputs": [{k: i[k] for k in ("uri", "kind", "sha256", "bytes", "records", "parsed",
                                      "quarantined", "blank_lines", "error")} for i in inputs],
        "outputs": [{k: o[k] for k in ("table", "date", "path", "rows", "bytes", "sha256")} for o in outputs],
        "counts": totals(outputs),
        "accounting": acc,
        "timings": timings,
    }
    if extra:
        doc.update(extra)
    return doc


def progress(receipts_dir: str) -> tuple[int, int]:
    """(files done, records read) from the read receipts written so far."""
    done = rows = 0
    try:
        names = os.listdir(receipts_dir)
    except OSError:
        return 0, 0
    for n in names:
        if n.startswith("input-") and n.endswith(".json"):
            try:
                rows += json.loads(open(os.path.join(receipts_dir, n), "rb").read())["records"]
                done += 1
            except (OSError, ValueError, KeyError):
                pass
    return done, rows
