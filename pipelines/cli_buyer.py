"""Analyst and buyer commands: sql, export, verify, keygen (thin over the library)."""
from __future__ import annotations

import csv
import json
import os
import sys

import click


def _emit(con, sql: str, fmt: str, dest: str | None) -> None:
    rel = con.sql(sql)
    if rel is None:  # DDL/SET: nothing to print
        return
    if fmt == "parquet":
        if not dest:
            raise click.ClickException("--format parquet needs --output FILE")
        import pyarrow.parquet as pq
        t = rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
        pq.write_table(t, dest, compression="zstd")
        click.echo(f"{t.num_rows} rows → {dest}", err=True)
        return
    out = open(dest, "w", newline="") if dest else sys.stdout
    try:
        if fmt == "table":
            rel.show(max_rows=10_000, max_width=10_000) if not dest else out.write(str(rel))
        elif fmt == "csv":
            w = csv.writer(out)
            w.writerow(rel.columns)
            w.writerows(rel.fetchall())
        elif fmt == "json":
            cols = rel.columns
            for row in rel.fetchall():
                out.write(json.dumps(dict(zip(cols, row)), default=str) + "\n")
    finally:
        if dest:
            out.close()


def _shell(con) -> None:
    """A minimal REPL: statements end with ';', `.quit` leaves, `.tables` lists views."""
    click.echo("hexsieve sql — views: witness beacon imagery sensor sensor_hourly sensor_daily "
               "quarantine runs ledger; end statements with ';', .quit to leave", err=True)
    buf = []
    while True:
        try:
            line = input("hexsieve> " if not buf else "     ...> ")
        except EOFError:
            break
        s = line.strip()
        if not buf and s in (".quit", ".exit", "\\q"):
            break
        if not buf and s == ".tables":
            _emit(con, "SELECT table_name, table_type FROM information_schema.tables ORDER BY 1", "table", None)
            continue
        buf.append(line)
        if s.endswith(";"):
            try:
                _emit(con, "\n".join(buf), "table", None)
            except Exception as e:  # keep the shell alive on a bad query
                click.echo(f"error: {str(e).splitlines()[0]}", err=True)
            buf = []


@click.command("sql")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="output root")
@click.argument("query", required=False)
@click.option("-f", "file_", type=click.Path(exists=True, dir_okay=False), help="read the query from FILE")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table")
@click.option("-o", "--output", "dest", type=click.Path(dir_okay=False), help="write results to FILE")
@click.option("--db", type=click.Path(dir_okay=False),
              help="persist the views in this DuckDB file (other clients: views only, no h3_* UDFs)")
def sql_cmd(out, query, file_, fmt, dest, db):
    """Query the outputs with DuckDB (interactive shell when no QUERY)."""
    import duckdb

    from pipelines import sqlviews
    if query and file_:
        raise click.UsageError("give QUERY or -f FILE, not both")
    if file_:
        query = open(file_).read()
    try:
        con, notes = sqlviews.connect(out, db)
    except (FileNotFoundError, duckdb.Error) as e:
        raise click.ClickException(str(e).splitlines()[0])
    if db:
        click.echo(f"views saved in {db}", err=True)
    if not query:
        if db and not sys.stdin.isatty():
            return
        _shell(con)
        return
    try:
        _emit(con, query, fmt, dest)
    except duckdb.Error as e:
        raise click.ClickException(str(e).splitlines()[0])


@click.command("export")
@click.option("--out", "out", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--dataset", required=True, type=click.Choice(["witness", "imagery", "sensor"]))
@click.option("--to", "to", required=True, type=click.Path(file_okay=False), help="bundle directory (new or empty)")
@click.option("--from", "date_from", help="first date, YYYY-MM-DD")
@click.option("--until", "date_until", help="last date, YYYY-MM-DD (inclusive)")
@click.option("--region", type=click.Path(exists=True, dir_okay=False), help="GeoJSON (Multi)Polygon")
@click.option("--region-res", type=click.IntRange(0, 15), help="H3 resolution of the region cell set (default: auto)")
@click.option("--valid-only", is_flag=True, help="only rows with verdict 'valid'")
@click.option("--min-qod", type=float, help="sensor: only stations with daily QoD ≥ X")
@click.option("--columns", help="comma-separated columns (record_sha256 and date always kept)")
@click.option("--licence", "--license", "licence", default="CC-BY-4.0", show_default=True, help="SPDX id")
@click.option("--sign-key", type=click.Path(exists=True, dir_okay=False), help="ed25519 key (hexsieve keygen)")
def export_cmd(out, dataset, to, date_from, date_until, region, region_res, valid_only, min_qod,
               columns, licence, sign_key):
    """Export a verifiable buyer bundle (Parquet, manifest, Merkle root, Croissant, datasheet)."""
    from pipelines import export, region as region_mod, signing
    opts = export.ExportOptions(
        out=out, dataset=dataset, to=to, date_from=date_from, date_until=date_until,
        region=region, region_res=region_res, valid_only=valid_only, min_qod=min_qod,
        columns=[c.strip() for c in columns.split(",") if c.strip()] if columns else None,
        licence=licence, sign_key=sign_key)
    try:
        m = export.export(opts)
    except (export.ExportError, region_mod.RegionError, signing.KeyError_) as e:
        raise click.ClickException(str(e))
    c = m["counts"]
    click.echo(f"{c['exported_rows']} of {c['window_rows']} rows in {c['files']} file(s) → {to}")
    click.echo(f"merkle root {m['merkle']['root']}")
    for k, v in sorted(m["excluded"].items()):
        click.echo(f"excluded {k}: {v['rows']}")


@click.command("verify")
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--pubkey", type=click.Path(exists=True, dir_okay=False), help="seller's ed25519 public key")
@click.option("--row-proof", help="a record_sha256 (print its inclusion proof) or a proof JSON file (check it)")
@click.option("--skip-croissant", is_flag=True, help="skip the mlcroissant validation (faster)")
def verify_cmd(bundle, pubkey, row_proof, skip_croissant):
    """Check every checksum, the Merkle root, the signature and the Croissant file."""
    from pipelines import bundle_verify
    try:
        r = bundle_verify.verify(bundle, pubkey=pubkey, row_proof=row_proof,
                                 check_croissant=not skip_croissant)
    except bundle_verify.VerifyError as e:
        raise click.ClickException(f"verification failed: {e}")
    who = ("signed, key pinned" if r.get("pinned") else
           "signed by the embedded key (pass --pubkey to pin it)" if r["signed"] else "unsigned")
    click.echo(f"OK: {r['files']} files, {r['rows']} rows, merkle root {r['merkle_root']}, {who}",
               err=bool(row_proof))
    for n in r["notes"]:
        click.echo(f"note: {n}", err=True)
    if row_proof and "proof" in r:
        if r["proof"].get("verified"):
            click.echo(f"row proof holds for {r['proof']['record_sha256']}", err=True)
        else:
            click.echo(json.dumps(r["proof"], indent=2))


@click.command("keygen")
@click.argument("prefix")
def keygen_cmd(prefix):
    """Create an ed25519 key pair PREFIX.key / PREFIX.pub for signing bundles."""
    from pipelines import signing
    try:
        k, p = signing.keygen(prefix)
    except (signing.KeyError_, OSError) as e:
        raise click.ClickException(str(e))
    click.echo(f"secret key {k} (keep private), public key {p} (give to buyers)")
    if os.name == "posix":
        click.echo(f"public key: {open(p).read().strip()}")


commands = [sql_cmd, export_cmd, verify_cmd, keygen_cmd]
