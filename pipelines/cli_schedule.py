"""`hexsieve run`, `hexsieve prune` and `hexsieve ledger`: scheduled operation.

Every failure ends in one line on stderr and a non-zero exit code, so cron
mail and Airflow task logs say what went wrong without a traceback:
0 done (or nothing to do), 1 run failed, 2 bad config or usage,
75 another run of the same source and date is in progress (retry later).
"""
from __future__ import annotations

import sys

import click

from pipelines.cli_batch import BEAM_CONTEXT, parse_now


def _fail(msg: str, code: int) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)


def _load(config: str):
    from pipelines.config import ConfigError, load
    try:
        return load(config)
    except ConfigError as e:
        _fail(str(e), 2)


@click.command("run", context_settings=BEAM_CONTEXT)
@click.option("--config", "config", required=True, help="hexsieve.toml")
@click.option("--date", "day", required=True, help="logical date to process, YYYY-MM-DD")
@click.option("--source", "sources", multiple=True, help="only these sources (repeatable; default: all configured)")
@click.option("--now", default=None, help="processing time, ISO 8601 (default: current time)")
@click.option("--force", is_flag=True, help="re-process the date even if every file is already ingested")
@click.option("--allow-missing", is_flag=True,
              help="re-process even though files ingested earlier for the date are gone from the landing area")
@click.option("--allow-empty", is_flag=True, help="a date without landing files is not an error")
@click.option("--runner", type=click.Choice(["direct", "dask"]), default=None, help="default: [beam] runner")
@click.option("--dask-address", default=None, help="existing dask scheduler, tcp://HOST:8786")
@click.option("--dask-workers", type=int, default=None, help="start a local dask cluster of N worker processes")
@click.option("--buckets", type=int, default=None, help="shuffle buckets (default: from input size)")
@click.option("--quiet", is_flag=True, help="only errors")
@click.pass_context
def run_cmd(ctx, config, day, sources, now, force, allow_missing, allow_empty, runner, dask_address,
            dask_workers, buckets, quiet):
    """Process every landing file of one date, for each configured source.

    Idempotent: a date whose files are all in the ingest ledger is a no-op;
    otherwise the whole date is re-processed and replaced atomically. Extra
    arguments are Beam pipeline options."""
    from pipelines.config import ConfigError, parse_date
    from pipelines.runner import runner_context
    cfg = _load(config)
    try:
        d = parse_date(day)
    except ConfigError as e:
        _fail(str(e), 2)
    unknown = [s for s in sources if s not in cfg.sources]
    if unknown:
        _fail(f"source {unknown[0]} is not configured in {cfg.path} (configured: {', '.join(cfg.sources)})", 2)
    try:
        when = parse_now(now)
    except click.BadParameter as e:
        _fail(e.message, 2)
    runner = runner or cfg.beam.runner
    dask_address = dask_address or (cfg.beam.dask_address if runner == "dask" else None)
    dask_workers = dask_workers or (cfg.beam.dask_workers if runner == "dask" else None)
    code = 0
    try:
        rc = runner_context(runner, dask_address, dask_workers, list(cfg.beam.args) + list(ctx.args))
    except ValueError as e:
        _fail(str(e), 2)
    with rc as beam_args:
        # Imported (with Beam) after a local cluster has started: see cli_batch.run_and_report.
        from pipelines.schedule import RunBusy, RunFailed, one_line, run_source
        for name in (list(sources) or list(cfg.sources)):
            try:
                o = run_source(cfg, cfg.sources[name], d, now=when, force=force, allow_missing=allow_missing,
                               allow_empty=allow_empty, beam_args=beam_args, n_buckets=buckets,
                               progress=False)
            except RunFailed as e:
                click.echo(f"error: {name} {d}: {e}", err=True)
                code = e.exit_code if code in (0, RunBusy.exit_code) else code  # a failure outranks "busy"
                continue
            except Exception as e:  # never a traceback in a cron log
                click.echo(f"error: {name} {d}: {one_line(e)}", err=True)
                code = 1
                continue
            if not quiet or o.status == "skipped":
                click.echo(f"{name} {d}: {o.message}", err=o.status == "skipped")
    sys.exit(code)


@click.command("prune")
@click.option("--config", "config", required=True, help="hexsieve.toml")
@click.option("--days", type=int, default=None, help="keep this many days (default: [retention] days)")
@click.option("--as-of", "as_of", default=None, help="reference date YYYY-MM-DD (default: today, UTC)")
def prune_cmd(config, days, as_of):
    """Remove partitions and run manifests older than the retention period."""
    from datetime import datetime, timezone
    from pipelines.config import ConfigError, parse_date
    from pipelines.schedule import prune
    cfg = _load(config)
    days = days or cfg.retention_days
    if not days or days < 1:
        _fail(f"no retention period: set [retention] days in {cfg.path} or pass --days", 2)
    try:
        ref = parse_date(as_of) if as_of else datetime.now(timezone.utc).date()
    except ConfigError as e:
        _fail(str(e), 2)
    removed = prune(cfg.out, days, ref)
    click.echo(f"pruned {len(removed)} item(s) older than {days} day(s) before {ref}")
    for r in removed:
        click.echo(f"  {r}")


@click.command("ledger")
@click.option("--config", "config", required=True, help="hexsieve.toml")
@click.option("--source", default=None)
@click.option("--date", "day", default=None, help="logical date YYYY-MM-DD")
@click.option("--uri", default=None, help="one input file")
def ledger_cmd(config, source, day, uri):
    """List what the ingest ledger says was ingested."""
    from pipelines.ledger import Ledger
    cfg = _load(config)
    led = Ledger(cfg.ledger)
    led.sync(cfg.out) if __import__("os").path.isdir(cfg.out) else None
    rows = led.rows(source=source, logical_date=day, uri=uri)
    if not rows:
        click.echo("ledger is empty" if not (source or day or uri) else "no matching rows")
        return
    for r in rows:
        click.echo(f"{r['status']:10s} v{r['version']} {r['source'] or '-':8s} {r['logical_date'] or '-':10s} "
                   f"{r['records'] if r['records'] is not None else '-':>8} rec "
                   f"{(r['sha256'] or '-')[:12]} {r['run_id']} {r['uri']}")


commands = [run_cmd, prune_cmd, ledger_cmd]
