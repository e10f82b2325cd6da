"""Core commands: schema."""
from __future__ import annotations

import click

from schemas import SCHEMAS, get_schema


@click.command("schema")
@click.argument("name", required=False)
def schema_cmd(name: str | None) -> None:
    """Print a schema (fields, types, units), or list schema names."""
    if not name:
        for n in sorted(SCHEMAS):
            click.echo(f"{n:20s} {SCHEMAS[n].metadata.get(b'description', b'').decode()}")
        return
    try:
        s = get_schema(name)
    except KeyError as e:
        raise click.UsageError(str(e.args[0]))
    click.echo(f"{name}: {s.metadata.get(b'description', b'').decode()}")
    for f in s:
        meta = f.metadata or {}
        unit = meta.get(b"unit", b"").decode()
        doc = meta.get(b"description", b"").decode()
        req = "required" if not f.nullable else "optional"
        click.echo(f"  {f.name:28s} {str(f.type):24s} {req:9s} {('[' + unit + '] ') if unit else ''}{doc}")


commands = [schema_cmd]
