"""The ingest ledger: versions, superseding, idempotence and repair from manifests."""
from __future__ import annotations

import json
import os

from pipelines.ledger import Ledger


def doc(run_id, files, date="2026-11-20", source="witness"):
    return {"run_id": run_id, "source": source, "logical_date": date,
            "inputs": [{"uri": u, "kind": "witness", "sha256": s, "bytes": 10, "records": 5, "parsed": 4,
                        "quarantined": 1, "blank_lines": 0, "error": ""} for u, s in files],
            "accounting": {"ok": True, "files": [{"uri": u, "valid": 3, "invalid": 1, "quarantined": 1}
                                                  for u, _ in files]}}


def test_record_versions_and_superseding(tmp_path):
    led = Ledger(str(tmp_path / "l.duckdb"))
    assert led.committed("a") is None and not led.is_current("a", "x")
    assert led.record(doc("r1", [("a", "s1"), ("b", "s2")])) == 2
    assert led.record(doc("r1", [("a", "s1"), ("b", "s2")])) == 0  # idempotent per run
    assert led.is_current("a", "s1") and not led.is_current("a", "s9") and not led.is_current("a", None)
    row = led.committed("a")
    assert (row["version"], row["records"], row["valid"], row["invalid"], row["quarantined"]) == (1, 5, 3, 1, 1)
    assert row["committed_at"] is not None and row["run_id"] == "r1"
    # a changed file under the same name: version 2; the date re-processed without b
    led.record(doc("r2", [("a", "s1b")]))
    assert led.committed("a")["version"] == 2 and led.is_current("a", "s1b")
    assert led.committed("b") is None
    st = {(r["uri"], r["run_id"]): (r["status"], r["version"]) for r in led.rows()}
    assert st == {("a", "r1"): ("superseded", 1), ("b", "r1"): ("superseded", 1), ("a", "r2"): ("committed", 2)}
    # back to the old bytes: same version number as before
    led.record(doc("r3", [("a", "s1")]))
    assert led.committed("a")["version"] == 1
    assert [r["uri"] for r in led.for_date("witness", "2026-11-20")] == ["a"]


def test_twin_and_failure(tmp_path):
    led = Ledger(str(tmp_path / "l.duckdb"))
    led.record(doc("r1", [("a", "s1")]))
    assert led.twin("s1", "b")["uri"] == "a" and led.twin("s1", "a") is None
    led.record_failure("witness", "2026-11-21", "r9", [{"uri": "c", "kind": "witness", "size": 3, "sha256": "s3"}],
                       "disk full")
    f = led.rows(uri="c")[0]
    assert (f["status"], f["error"], f["committed_at"], f["version"]) == ("failed", "disk full", None, 1)
    assert not led.is_current("c", "s3")


def test_sync_refills_from_manifests(tmp_path):
    """The manifests are the truth: a lost or stale ledger is rebuilt from them."""
    out = tmp_path / "out"
    (out / "_runs").mkdir(parents=True)
    for i, rid in enumerate(["r1", "r2"]):
        p = out / "_runs" / f"{rid}.json"
        p.write_text(json.dumps(doc(rid, [("a", f"s{i}")])))
        os.utime(p, (1_700_000_000 + i, 1_700_000_000 + i))
    (out / "_runs" / "r3.json.tmp-123").write_text("{half")
    led = Ledger(str(out / "_ledger.duckdb"))
    assert led.sync(str(out)) == ["r1", "r2"]
    assert led.sync(str(out)) == []
    assert led.committed("a")["run_id"] == "r2" and led.committed("a")["version"] == 2


def test_readers_never_hold_the_file(tmp_path):
    """Connections are per call: another process can write right after a read."""
    import subprocess
    import sys
    path = str(tmp_path / "l.duckdb")
    led = Ledger(path)
    led.record(doc("r1", [("a", "s1")]))
    assert led.is_current("a", "s1")
    code = ("from pipelines.ledger import Ledger; import json,sys; "
            f"print(Ledger({path!r}).record(json.loads(sys.argv[1])))")
    r = subprocess.run([sys.executable, "-c", code, json.dumps(doc("r2", [("b", "s2")]))],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr
    assert led.is_current("b", "s2")
