"""DuckDB views over an output root, for analysts and for the exporter.

Views read the published hive partitions only (`<table>/date=*/part-*.parquet`),
so staging areas, `_`/`.` folders and half-written temp files are never seen,
and `date` is a real DATE partition column: `WHERE date = '…'` opens one
folder (partition pruning). A table nobody has produced yet still gets a
view — empty, with the columns of its schema — so a query fails only when it
truly needs the missing data. Paths are absolute so a `--db` file keeps
working from any directory.
"""
from __future__ import annotations

import glob
import os

import duckdb

from pipelines import h3udf

TABLES = ("witness", "beacon", "imagery", "sensor", "sensor_hourly", "sensor_daily", "quarantine")
LEDGER_ALIAS = "hexsieve_ledger"
LEDGER_COLUMNS = [("uri", "VARCHAR"), ("size", "BIGINT"), ("sha256", "VARCHAR"),
                  ("source", "VARCHAR"), ("run_id", "VARCHAR"), ("status", "VARCHAR"),
                  ("records", "BIGINT"), ("committed_at", "TIMESTAMPTZ")]
# Run manifests vary by source; the stable top level is typed, the rest stays JSON.
RUN_COLUMNS = {
    "run_id": "VARCHAR", "source": "VARCHAR", "pipeline_version": "VARCHAR", "now": "VARCHAR",
    "logical_date": "VARCHAR", "runner": "VARCHAR", "rules": "JSON",
    "inputs": "STRUCT(uri VARCHAR, kind VARCHAR, sha256 VARCHAR, bytes BIGINT, records BIGINT, "
              "parsed BIGINT, quarantined BIGINT, blank_lines BIGINT, error VARCHAR)[]",
    "outputs": "STRUCT(\"table\" VARCHAR, date VARCHAR, path VARCHAR, \"rows\" BIGINT, "
               "bytes BIGINT, sha256 VARCHAR)[]",
    "counts": "JSON", "accounting": "JSON", "timings": "JSON",
}


def lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def table_glob(out: str, table: str) -> str:
    return os.path.join(os.path.abspath(out), table, "date=*", "part-*.parquet")


def has_data(out: str, table: str) -> bool:
    return bool(glob.glob(table_glob(out, table)))


def parquet_source(out: str, table: str) -> str:
    return (f"read_parquet({lit(table_glob(out, table))}, hive_partitioning=true, "
            f"hive_types={{'date': 'DATE'}})")


def _schema_for(table: str):
    from schemas import SCHEMAS
    return SCHEMAS.get(table)


def _empty_select(cols: list[tuple[str, str]]) -> str:
    body = ", ".join(f"CAST(NULL AS {t}) AS {ident(n)}" for n, t in cols)
    return f"SELECT {body} WHERE false"


def schema_columns(con, table: str) -> list[tuple[str, str]] | None:
    s = _schema_for(table)
    if s is None:
        return None
    rel = con.from_arrow(s.empty_table())
    return [(n, str(t)) for n, t in zip(rel.columns, rel.types)] + [("date", "DATE")]


def table_view_sql(con, out: str, table: str) -> tuple[str, str | None]:
    """(SELECT for the view, note when the table has no data yet)."""
    if has_data(out, table):
        return f"SELECT * FROM {parquet_source(out, table)}", None
    cols = schema_columns(con, table)
    if cols is not None:
        return _empty_select(cols), f"{table}: no data yet (empty view)"
    msg = f"no {table} data under {os.path.abspath(out)} and no schema for it yet"
    return f"SELECT * FROM (SELECT NULL AS date) WHERE error({lit(msg)}) IS NULL", f"{table}: missing"


def _runs_sql(out: str) -> str:
    pat = os.path.join(os.path.abspath(out), "_runs", "[!._]*.json")
    if not glob.glob(pat):
        return _empty_select(list(RUN_COLUMNS.items()) + [("filename", "VARCHAR")])
    cols = ", ".join(f"{lit(n)}: {lit(t)}" for n, t in RUN_COLUMNS.items())
    return (f"SELECT * FROM read_json({lit(pat)}, format='auto', columns={{{cols}}}, "
            f"filename=true, maximum_object_size=268435456)")


def _ledger_sql(con, out: str) -> tuple[str, str | None]:
    path = os.path.join(os.path.abspath(out), "_ledger.duckdb")
    names = ", ".join(ident(n) for n, _ in LEDGER_COLUMNS)
    if os.path.exists(path):
        try:
            attached = {r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()}
            if LEDGER_ALIAS not in attached:
                con.execute(f"ATTACH {lit(path)} AS {LEDGER_ALIAS} (READ_ONLY)")
            return f"SELECT {names} FROM {LEDGER_ALIAS}.ledger", None
        except duckdb.Error as e:  # locked by a running scheduler, or not a ledger
            note = f"ledger: cannot attach {path} ({str(e).splitlines()[0]}); empty view"
            return _empty_select(LEDGER_COLUMNS), note
    return _empty_select(LEDGER_COLUMNS), "ledger: no _ledger.duckdb yet (empty view)"


def create_views(con, out: str) -> list[str]:
    """Create (or replace) every view; returns notes about missing data."""
    if not os.path.isdir(out):
        raise FileNotFoundError(f"output root not found: {out}")
    notes = []
    for table in TABLES:
        sql, note = table_view_sql(con, out, table)
        con.execute(f"CREATE OR REPLACE VIEW {table} AS {sql}")
        if note:
            notes.append(note)
    con.execute(f"CREATE OR REPLACE VIEW runs AS {_runs_sql(out)}")
    sql, note = _ledger_sql(con, out)
    con.execute(f"CREATE OR REPLACE VIEW ledger AS {sql}")
    if note:
        notes.append(note)
    return notes


def connect(out: str, db: str | None = None) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    """A connection with every view and the H3 UDFs; `db` persists the views."""
    con = duckdb.connect(db or ":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")  # timestamps print and export the same everywhere
    except duckdb.Error:
        pass
    notes = create_views(con, out)
    h3udf.register(con)
    return con, notes
