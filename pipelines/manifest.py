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


def account(inputs: list[dict], outputs: list[dict]) -> dict:
    """Per input file: records = valid + invalid + quarantined, else failure."""
    got: dict[str, Counter] = defaultdict(Counter)
    for o in outputs:
        for uri, c in o["per_source"].items():
            got[uri].update(c)
    files, ok = [], True
    for i in inputs:
        c = got.get(i["uri"], Counter())
        row = {"uri": i["uri"], "kind": i["kind"], "records": i["records"],
               "valid": c.get("valid", 0), "invalid": c.get("invalid", 0),
               "quarantined": c.get("quarantined", 0)}
        row["ok"] = row["records"] == row["valid"] + row["invalid"] + row["quarantined"]
        ok &= row["ok"]
        files.append(row)
    unknown = sorted(set(got) - {i["uri"] for i in inputs})
    if unknown:
        ok = False
    return {"ok": ok, "files": files, "rows_from_unlisted_inputs": unknown}


def totals(outputs: list[dict]) -> dict:
    per_table: dict[str, Counter] = defaultdict(Counter)
    reasons: dict[str, Counter] = defaultdict(Counter)
    for o in outputs:
        for c in o["per_source"].values():
            per_table[o["table"]].update(c)
        reasons[o["table"]].update(o.get("reasons", {}))
    return {"by_table": {t: dict(sorted(c.items())) for t, c in sorted(per_table.items())},
            "reasons": {t: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
                        for t, c in sorted(reasons.items()) if c}}


def build(*, run_id: str, source: str, pipeline_version: str, rules: dict, now: str,
          logical_date: str | None, inputs: list[dict], outputs: list[dict], timings: dict,
          runner: str, extra: dict | None = None) -> dict:
    acc = account(inputs, outputs)
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
