"""The short end-of-run summary printed by batch commands."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_summary(doc: dict, out: str, console: Console | None = None) -> None:
    console = console or Console(stderr=False)
    acc = doc["accounting"]
    records = sum(f["records"] for f in acc["files"])
    t = Table(title=f"hexsieve {doc['source']} run {doc['run_id']}", show_lines=False)
    for col in ("table", "rows", "valid", "invalid", "quarantined"):
        t.add_column(col, justify="right" if col != "table" else "left")
    for name, c in doc["counts"]["by_table"].items():
        rows = sum(c.values())
        if set(c) == {"rows"}:  # a derived table without verdicts (e.g. sensor_hourly)
            t.add_row(name, f"{rows:,}", "", "", "")
            continue
        t.add_row(name, f"{rows:,}", f"{c.get('valid', 0):,}", f"{c.get('invalid', 0):,}",
                  f"{c.get('quarantined', 0):,}")
    console.print(t)
    for table, reasons in doc["counts"]["reasons"].items():
        top = ", ".join(f"{k} {v:,}" for k, v in list(reasons.items())[:6])
        console.print(f"  top reasons ({table}): {top}")
    secs = doc["timings"].get("total_s") or 0
    rate = records / secs if secs else 0
    console.print(f"  inputs: {len(acc['files'])} files, {records:,} records; "
                  f"accounting {'OK' if acc['ok'] else 'FAILED'} (records = valid + invalid + quarantined per file)")
    console.print(f"  {secs:.2f} s, {rate:,.0f} records/s on {doc['runner']}; "
                  f"manifest {out.rstrip('/')}/_runs/{doc['run_id']}.json")
