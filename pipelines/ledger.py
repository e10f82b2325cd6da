"""The ingest ledger: the single record of which input files were ingested.

An embedded DuckDB file (default `OUT/_ledger.duckdb`), one row per input
file per run. The run manifests in `OUT/_runs/` stay the source of truth:
a manifest is published atomically as the last step of a commit, and
`sync()` re-fills the ledger from manifests it lacks, so a crash between
commit and ledger write is repaired by the next run. DuckDB admits one
writer process per file, so connections are opened per call and retried
while another process holds the file.

Row status: `committed` (its data is published), `superseded` (a later run
re-ingested the uri or re-processed its date without it), `failed` (a run
that read it did not commit; committed_at is NULL).
"""
from __future__ import annotations

import glob
import json
import os
import time
from datetime import datetime, timezone

import duckdb

DDL = """
CREATE TABLE IF NOT EXISTS ledger (
    uri VARCHAR NOT NULL,
    size BIGINT,
    sha256 VARCHAR,
    source VARCHAR,
    kind VARCHAR,
    logical_date VARCHAR,
    run_id VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    records BIGINT,
    valid BIGINT,
    invalid BIGINT,
    quarantined BIGINT,
    version INTEGER,
    error VARCHAR,
    committed_at TIMESTAMP,
    recorded_at TIMESTAMP
)"""
COLUMNS = ["uri", "size", "sha256", "source", "kind", "logical_date", "run_id", "status", "records",
           "valid", "invalid", "quarantined", "version", "error", "committed_at", "recorded_at"]


def default_path(out: str) -> str:
    return os.path.join(out, "_ledger.duckdb")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class LedgerError(Exception):
    """The ledger file cannot be opened (corrupt, or locked for too long)."""


class Ledger:
    def __init__(self, path: str, wait_s: float = 60.0):
        self.path = path
        self.wait_s = wait_s

    def _connect(self, read_only: bool = False):
        if read_only and not os.path.exists(self.path):
            return None
        parent = os.path.dirname(self.path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                con = duckdb.connect(self.path, read_only=read_only)
                break
            except duckdb.IOException as e:
                if "lock" not in str(e).lower() or time.monotonic() >= deadline:
                    raise LedgerError(f"ledger {self.path}: {str(e).splitlines()[0]}") from None
                time.sleep(0.1)
            except duckdb.Error as e:
                raise LedgerError(f"ledger {self.path}: {str(e).splitlines()[0]}") from None
        if not read_only:
            con.execute(DDL)
        return con

    def _query(self, sql: str, params: list | None = None) -> list[dict]:
        con = self._connect(read_only=True)
        if con is None:
            return []
        try:
            if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'ledger'"
                               ).fetchone()[0]:
                return []
            cur = con.execute(sql, params or [])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]
        finally:
            con.close()

    # --- queries -------------------------------------------------------------
    def committed(self, uri: str) -> dict | None:
        """The row under which `uri`'s current data is published, or None."""
        rows = self._query("SELECT * FROM ledger WHERE uri = ? AND status = 'committed' "
                           "ORDER BY committed_at DESC, version DESC LIMIT 1", [uri])
        return rows[0] if rows else None

    def is_current(self, uri: str, sha256: str | None) -> bool:
        """True when `uri` with exactly these bytes is already ingested."""
        if not sha256:
            return False
        row = self.committed(uri)
        return row is not None and row["sha256"] == sha256

    def for_date(self, source: str, logical_date: str) -> list[dict]:
        return self._query("SELECT * FROM ledger WHERE source = ? AND logical_date = ? AND status = 'committed' "
                           "ORDER BY uri", [source, logical_date])

    def twin(self, sha256: str, uri: str) -> dict | None:
        """A committed file with the same bytes under another name."""
        rows = self._query("SELECT * FROM ledger WHERE sha256 = ? AND uri <> ? AND status = 'committed' "
                           "ORDER BY committed_at, uri LIMIT 1", [sha256, uri])
        return rows[0] if rows else None

    def rows(self, source: str | None = None, logical_date: str | None = None, uri: str | None = None) -> list[dict]:
        where, params = [], []
        for col, v in (("source", source), ("logical_date", logical_date), ("uri", uri)):
            if v is not None:
                where.append(f"{col} = ?")
                params.append(v)
        sql = "SELECT * FROM ledger" + (" WHERE " + " AND ".join(where) if where else "")
        return self._query(sql + " ORDER BY recorded_at, uri, version", params)

    def run_ids(self) -> set[str]:
        """Runs recorded as committed (a failed attempt under the same id doesn't count)."""
        return {r["run_id"] for r in self._query("SELECT DISTINCT run_id FROM ledger WHERE status <> 'failed'")}

    # --- writes --------------------------------------------------------------
    def record(self, doc: dict, committed_at: datetime | None = None) -> int:
        """Record a committed run's inputs from its manifest; idempotent per
        run id. Returns the number of rows added."""
        run_id = doc["run_id"]
        acc = {f["uri"]: f for f in (doc.get("accounting") or {}).get("files", [])}
        when = (committed_at or _utcnow()).replace(tzinfo=None)
        con = self._connect()
        try:
            con.execute("BEGIN TRANSACTION")
            if con.execute("SELECT count(*) FROM ledger WHERE run_id = ? AND status <> 'failed'",
                           [run_id]).fetchone()[0]:
                con.execute("ROLLBACK")
                return 0
            source, ldate = doc.get("source"), doc.get("logical_date")
            if ldate:
                # the date was re-processed as a whole: anything not in this run is no longer published
                con.execute("UPDATE ledger SET status = 'superseded' WHERE source = ? AND logical_date = ? "
                            "AND status = 'committed'", [source, ldate])
            n = 0
            for i in doc.get("inputs", []):
                uri, sha = i["uri"], i.get("sha256") or None
                con.execute("UPDATE ledger SET status = 'superseded' WHERE uri = ? AND status = 'committed'", [uri])
                a = acc.get(uri, {})
                con.execute("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, 'committed', ?, ?, ?, ?, ?, ?, ?, ?)",
                            [uri, i.get("bytes"), sha, source, i.get("kind"), ldate, run_id,
                             i.get("records"), a.get("valid"), a.get("invalid"),
                             a.get("quarantined", i.get("quarantined")), self._version(con, uri, sha),
                             i.get("error") or None, when, _utcnow()])
                n += 1
            con.execute("COMMIT")
            return n
        finally:
            con.close()

    def record_failure(self, source: str, logical_date: str | None, run_id: str,
                       files: list[dict], error: str) -> None:
        """Note that a run read these files but did not commit (`files`:
        dicts with uri, kind, size, sha256). Nothing is published by it."""
        con = self._connect()
        try:
            con.execute("BEGIN TRANSACTION")
            for f in files:
                con.execute("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, 'failed', NULL, NULL, NULL, NULL, ?, ?, "
                            "NULL, ?)", [f["uri"], f.get("size"), f.get("sha256"), source, f.get("kind"),
                                         logical_date, run_id, self._version(con, f["uri"], f.get("sha256")),
                                         error[:2000], _utcnow()])
            con.execute("COMMIT")
        finally:
            con.close()

    @staticmethod
    def _version(con, uri: str, sha: str | None) -> int:
        """Same bytes as an earlier row → that version; new bytes → next version."""
        if sha:
            r = con.execute("SELECT max(version) FROM ledger WHERE uri = ? AND sha256 = ?", [uri, sha]).fetchone()
            if r[0] is not None:
                return int(r[0])
        r = con.execute("SELECT max(version) FROM ledger WHERE uri = ?", [uri]).fetchone()
        return int(r[0] or 0) + 1

    def sync(self, out: str) -> list[str]:
        """Record every committed run manifest in OUT/_runs the ledger lacks
        (oldest first, so superseding follows commit order). Returns run ids."""
        paths = [p for p in glob.glob(os.path.join(out, "_runs", "*.json")) if ".tmp-" not in p]
        if not paths:
            return []
        known = self.run_ids()
        todo = []
        for p in paths:
            rid = os.path.basename(p)[:-5]
            if rid not in known:
                todo.append((os.path.getmtime(p), p))
        done = []
        for mtime, p in sorted(todo):
            try:
                doc = json.loads(open(p, "rb").read())
            except (OSError, ValueError):
                continue  # not a manifest we can read; never half-written (atomic rename)
            if "run_id" not in doc or "inputs" not in doc:
                continue
            self.record(doc, committed_at=datetime.fromtimestamp(mtime, timezone.utc))
            done.append(doc["run_id"])
        return done
