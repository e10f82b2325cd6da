"""`hexsieve sql`: views, partition pruning, H3 UDFs, --db, and docs/queries.md."""
from __future__ import annotations

import json
import os
import re
import shutil

import duckdb
import h3.api.basic_int as h3i
import pytest
from click.testing import CliRunner

import _buyer_fixture as F
from pipelines import cli_buyer, h3udf, sqlviews
from schemas import SCHEMAS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return F.build(str(tmp_path_factory.mktemp("out") / "OUT"))


@pytest.fixture(scope="module")
def con(out):
    c, notes = sqlviews.connect(out)
    assert notes == []
    yield c
    c.close()


def cols(con, view):
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {view}").fetchall()}


@pytest.mark.parametrize("view,rows", [
    ("witness", 6000), ("beacon", 900), ("imagery", 4500), ("sensor", 2160),
    ("sensor_hourly", 2160), ("sensor_daily", 90), ("quarantine", 15), ("runs", 3), ("ledger", 3)])
def test_each_view(con, view, rows):
    assert con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0] == rows
    c = cols(con, view)
    if view in SCHEMAS:
        assert set(SCHEMAS[view].names) | {"date"} == set(c)
        assert c["date"] == "DATE"
        dates = [r[0].isoformat() for r in con.execute(
            f"SELECT DISTINCT date FROM {view} ORDER BY 1").fetchall()]
        assert dates == F.DATES
    if view == "ledger":
        assert list(c) == [n for n, _ in sqlviews.LEDGER_COLUMNS]
    if view == "runs":
        assert {"run_id", "source", "inputs", "outputs", "counts", "filename"} <= set(c)


def test_typed_columns(con):
    c = cols(con, "witness")
    assert c["witness_cell"] == "UBIGINT" and c["reasons"] == "VARCHAR[]"
    recs = con.execute("SELECT list_sum([i.records for i in inputs]) FROM runs ORDER BY run_id").fetchall()
    assert recs == [(2005,)] * 3


def test_hidden_folders_never_read(out, con):
    # _staging/ holds a corrupt part file and _runs/ a half-written JSON: reading either would fail
    assert os.path.exists(os.path.join(out, "witness", "_staging", "date=2026-11-20", "part-9.parquet"))
    assert con.execute("SELECT count(*) FROM witness WHERE date = '2026-11-20'").fetchall()[0][0] == 2000
    assert con.execute("SELECT count(*) FROM runs").fetchall()[0][0] == 3


def test_partition_pruning_plan(con):
    plan = con.execute("EXPLAIN ANALYZE SELECT count(*) FROM witness WHERE date = '2026-11-20'").fetchall()
    text = "\n".join(str(r[-1]) for r in plan)
    assert re.search(r"Scanning Files:\s*1/3", text), text
    assert re.search(r"Total Files Read:\s*1\b", text), text


def test_partition_pruning_by_files(out, tmp_path):
    """A corrupt file in another date's folder is never opened by a one-date query."""
    root = str(tmp_path / "OUT")
    shutil.copytree(out, root)
    with open(os.path.join(root, "witness", "date=2026-11-21", "part-zzzz.parquet"), "wb") as f:
        f.write(b"PAR1 not really parquet PAR1")
    c, _ = sqlviews.connect(root)
    assert c.execute("SELECT count(*) FROM witness WHERE date = DATE '2026-11-20'").fetchall()[0][0] == 2000
    with pytest.raises(duckdb.Error):
        c.execute("SELECT count(*) FROM witness").fetchall()


def test_missing_tables_are_empty_views(tmp_path):
    root = F.build(str(tmp_path / "OUT"), tables=("witness",), ledger=False)
    c, notes = sqlviews.connect(root)
    assert any(n.startswith("imagery") for n in notes) and any(n.startswith("ledger") for n in notes)
    for view in ("imagery", "sensor", "sensor_daily", "beacon", "quarantine", "ledger"):
        assert c.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0] == 0
    assert set(SCHEMAS["imagery"].names) | {"date"} == set(cols(c, "imagery"))
    assert cols(c, "ledger")["committed_at"] == "TIMESTAMP WITH TIME ZONE"
    # a query over a missing table runs (empty), a table with no schema fails clearly
    assert c.execute("SELECT avg(qod_score) FROM sensor_daily").fetchall() == [(None,)]
    sql, note = sqlviews.table_view_sql(c, root, "lidar")
    c.execute(f"CREATE VIEW lidar AS {sql}")
    with pytest.raises(duckdb.Error, match="no lidar data"):
        c.execute("SELECT count(*) FROM lidar").fetchall()


def test_no_runs_no_ledger(tmp_path):
    root = str(tmp_path / "OUT")
    os.makedirs(root)
    c, _ = sqlviews.connect(root)
    assert c.execute("SELECT count(*) FROM runs").fetchall() == [(0,)]
    assert c.execute("SELECT count(*) FROM ledger").fetchall() == [(0,)]
    assert c.execute("SELECT count(*) FROM witness").fetchall() == [(0,)]


# ------------------------------------------------------------------ UDFs

CELLS = [h3i.latlng_to_cell(52.52, 13.405, 12), h3i.latlng_to_cell(-33.86, 151.2, 9),
         h3i.latlng_to_cell(0.0, 0.0, 15), h3i.latlng_to_cell(89.9, 10.0, 3)]


def q1(con, sql):
    return con.execute(sql).fetchall()[0][0]


@pytest.mark.parametrize("cell", CELLS)
def test_udfs_match_h3(con, cell):
    c = f"{cell}::UBIGINT"
    r = h3i.get_resolution(cell)
    assert q1(con, f"SELECT h3_cell_resolution({c})") == r
    for p in range(r + 1):
        assert q1(con, f"SELECT h3_cell_to_parent({c}, {p})") == h3i.cell_to_parent(cell, p)
    assert q1(con, f"SELECT h3_cell_to_parent({c}, {r + 1})") is None
    lat, lng = h3i.cell_to_latlng(cell)
    got = q1(con, f"SELECT h3_cell_to_latlng({c})")
    assert got == {"lat": lat, "lng": lng}
    assert q1(con, f"SELECT h3_cell_to_lat({c})") == lat
    assert q1(con, f"SELECT h3_latlng_to_cell({lat}, {lng}, {r})") == cell
    s = q1(con, f"SELECT h3_cell_to_string({c})")
    assert s == format(cell, "x")
    assert q1(con, f"SELECT h3_string_to_cell('{s}')") == cell
    assert q1(con, f"SELECT h3_string_to_cell(upper('{s}'))") == cell
    ring = sorted(h3i.grid_disk(cell, 2))
    got = con.execute(f"SELECT h3_grid_distance({c}, unnest({ring}::UBIGINT[]))").fetchall()
    assert [g[0] for g in got] == [h3i.grid_distance(cell, x) for x in ring]


def test_udfs_nulls_and_invalid(con):
    row = con.execute("""SELECT h3_cell_resolution(NULL), h3_cell_to_parent(12345::UBIGINT, 3),
        h3_cell_to_latlng(0::UBIGINT), h3_latlng_to_cell(NULL, 1.0, 5), h3_latlng_to_cell(95.0, 1.0, 5),
        h3_grid_distance(NULL, 1::UBIGINT), h3_cell_to_string(7::UBIGINT), h3_string_to_cell('zz'),
        h3_string_to_cell(NULL), h3_is_valid_cell(7::UBIGINT)""").fetchall()[0]
    assert row == (None,) * 9 + (False,)
    far = h3i.latlng_to_cell(-33.86, 151.2, 12)
    assert q1(con, f"SELECT h3_grid_distance({CELLS[0]}::UBIGINT, {far}::UBIGINT)") is None


def test_udfs_are_vectorized_over_columns(con):
    """Many vectors, many distinct values: results equal h3-py row by row."""
    rows = con.execute("""SELECT witness_cell, h3_cell_to_parent(witness_cell, 7),
        h3_cell_resolution(witness_cell), h3_cell_to_string(witness_cell),
        h3_grid_distance(witness_cell, beaconer_cell)
        FROM witness WHERE witness_cell <> 0 AND beaconer_cell <> 0""").fetchall()
    assert len(rows) > 5000
    for c, p, r, s, d in rows[::37]:
        assert (p, r, s) == (h3i.cell_to_parent(c, 7), 12, format(c, "x"))
    assert all(isinstance(r[4], int) for r in rows[:50])
    assert set(h3udf.UDFS) >= {"h3_cell_to_parent", "h3_cell_to_latlng", "h3_latlng_to_cell",
                               "h3_grid_distance", "h3_cell_to_string", "h3_string_to_cell",
                               "h3_cell_resolution"}


# ------------------------------------------------------------------ docs/queries.md

def doc_queries():
    text = open(os.path.join(ROOT, "docs", "queries.md")).read()
    found = re.findall(r"^### (.+?)\n(?:(?!^### ).)*?```sql\n(.*?)```", text, re.S | re.M)
    return found


def test_docs_have_the_required_queries():
    heads = [h.lower() for h, _ in doc_queries()]
    for need in ("valid-witness rate per hotspot", "coverage per res-8 hex per day",
                 "top reason codes", "stale share by hour", "stations by qod"):
        assert any(need in h for h in heads), need


@pytest.mark.parametrize("head,sql", doc_queries(), ids=[h for h, _ in doc_queries()])
def test_doc_query_runs(con, head, sql):
    rows = con.execute(sql).fetchall()
    assert rows, head


# ------------------------------------------------------------------ CLI and --db

def test_cli_formats(out, tmp_path):
    r = CliRunner()
    q = "SELECT date, count(*) AS n FROM witness GROUP BY date ORDER BY date"
    res = r.invoke(cli_buyer.sql_cmd, ["--out", out, "--format", "csv", q])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == ["date,n"] + [f"{d},2000" for d in F.DATES]
    res = r.invoke(cli_buyer.sql_cmd, ["--out", out, "--format", "json", q])
    assert json.loads(res.output.splitlines()[0]) == {"date": "2026-11-19", "n": 2000}
    f = tmp_path / "q.sql"
    f.write_text("SELECT count(*) AS n FROM sensor_daily WHERE qod_score >= 0.5")
    res = r.invoke(cli_buyer.sql_cmd, ["--out", out, "-f", str(f), "--format", "csv"])
    assert res.output.splitlines()[1] == str(3 * sum(1 for i in range(30) if 0.2 + 0.8 * i / 29 >= 0.5))
    pq_out = tmp_path / "r.parquet"
    res = r.invoke(cli_buyer.sql_cmd, ["--out", out, "--format", "parquet", "-o", str(pq_out), q])
    assert res.exit_code == 0 and pq_out.exists()
    res = r.invoke(cli_buyer.sql_cmd, ["--out", out, "SELECT * FROM nope"])
    assert res.exit_code == 1 and "nope" in res.output and "Traceback" not in res.output
    res = r.invoke(cli_buyer.sql_cmd, ["--out", str(tmp_path / "missing"), "SELECT 1"])
    assert res.exit_code == 1 and "not found" in res.output


def test_cli_shell(out):
    res = CliRunner().invoke(cli_buyer.sql_cmd, ["--out", out],
                             input="SELECT count(*) AS n\nFROM beacon;\nSELECT nope;\n.quit\n")
    assert res.exit_code == 0
    assert "900" in res.output and "error:" in res.output


def test_db_file_for_other_clients(out, tmp_path):
    db = str(tmp_path / "views.duckdb")
    res = CliRunner().invoke(cli_buyer.sql_cmd, ["--out", out, "--db", db, "SELECT 1"])
    assert res.exit_code == 0, res.output
    other = duckdb.connect(db, read_only=True)  # a plain DuckDB client
    assert other.execute("SELECT count(*) FROM witness WHERE date = '2026-11-21'").fetchall() == [(2000,)]
    assert other.execute("SELECT count(*) FROM sensor_daily").fetchall() == [(90,)]
    with pytest.raises(duckdb.Error):  # documented: UDFs are not stored in the file
        other.execute("SELECT h3_cell_resolution(witness_cell) FROM witness LIMIT 1").fetchall()
    with pytest.raises(duckdb.Error):  # documented: ATTACH is not persisted
        other.execute("SELECT count(*) FROM ledger").fetchall()
    other.execute(f"ATTACH '{out}/_ledger.duckdb' AS hexsieve_ledger (READ_ONLY)")
    assert other.execute("SELECT count(*) FROM ledger").fetchall() == [(3,)]
    other.close()
