"""`hexsieve batch sensor` and `hexsieve generate sensor` commands."""
from __future__ import annotations

import click

from pipelines.cli_batch import BEAM_CONTEXT, batch, common_options, generate, run_and_report


@batch.command("sensor", context_settings=BEAM_CONTEXT)
@click.option("--readings", multiple=True, required=True,
              help="weather-station packet files: JSON Lines (.gz) or Parquet, path or glob (repeatable)")
@click.option("--stations", required=True, help="station registry: CSV, JSON Lines or Parquet "
              "(station_id, model, claimed_cell res-7, claimed_at)")
@click.option("--days", "days", multiple=True, default=None,
              help="score exactly these UTC days, YYYY-MM-DD (repeatable; default: every day with packets "
                   "except a day that is only the 6 h context of the next)")
@common_options
@click.pass_context
def batch_sensor(ctx, readings, stations, days, rules_file, **kw):
    """Verify weather-station packets and score hourly/daily Quality of Data
    and Proof of Location (WeatherXM rules).

    Extra arguments are Beam pipeline options, e.g. --direct_num_workers=2."""
    def job():  # imported here, after a local cluster has started (see run_and_report)
        from pipelines.sensor_batch import sensor_job
        return sensor_job(stations, rules_file, list(days) or None)
    run_and_report(ctx, job, {"reading": list(readings)}, **kw)


@generate.command("sensor")
@click.option("--stations", type=int, default=12, show_default=True,
              help="stations (the first 12 play fixed fault scenarios)")
@click.option("--rows", type=int, default=None, help="≈ packets to generate (overrides --stations)")
@click.option("--days", type=int, default=1, show_default=True, help="UTC days from 2026-11-20 (plus 6 h before)")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--files", type=int, default=5, show_default=True,
              help="upload files: first .jsonl.gz, last .parquet, the rest .jsonl (≥ 3)")
@click.option("--out", required=True)
def generate_sensor(stations, rows, days, seed, files, out):
    """WS1000/WS2000 stations in Berlin, Helsinki and Athens, a station registry and packets."""
    from pipelines.generate.sensor import generate as gen
    if files < 3:
        raise click.BadParameter("must be ≥ 3", param_hint="--files")
    c = gen(out, stations=stations, days=days, seed=seed, files=files, rows=rows)
    click.echo(f"wrote {c['readings']:,} packets of {c['stations']} stations ({c['ws1000']} WS1000) in "
               f"{len(c['files'])} files, {c['registered']} registered, {c['malformed']} malformed lines to {out}")


commands: list = []  # the commands above attach to the shared `batch` / `generate` groups
