"""`hexsieve batch <source>` and `hexsieve generate <source>` commands."""
from __future__ import annotations

import functools
from datetime import datetime, timezone

import click

from pipelines.runner import runner_context


def parse_now(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint="--now") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def common_options(fn):
    """Options every batch command shares; anything unknown goes to Beam."""
    @click.option("--out", required=True, help="output root (local path or gs://, s3://)")
    @click.option("--run-id", default=None, help="run id (default: derived from inputs and --now)")
    @click.option("--now", "now", default=None, help="processing time, ISO 8601 (default: current time)")
    @click.option("--rules", "rules_file", default=None, help="TOML file overriding rule constants")
    @click.option("--runner", type=click.Choice(["direct", "dask"]), default="direct", show_default=True)
    @click.option("--dask-address", default=None, help="existing dask scheduler, tcp://HOST:8786")
    @click.option("--dask-workers", type=int, default=None, help="start a local dask cluster of N worker processes")
    @click.option("--buckets", type=int, default=None, help="shuffle buckets (default: from input size)")
    @click.option("--quiet", is_flag=True, help="no progress bar or summary")
    @functools.wraps(fn)
    def wrapper(*a, **k):
        return fn(*a, **k)
    return wrapper


BEAM_CONTEXT = {"ignore_unknown_options": True, "allow_extra_args": True}


def run_and_report(ctx: click.Context, job_factory, inputs: dict, out: str, run_id, now, runner,
                   dask_address, dask_workers, buckets, quiet, logical_date=None) -> dict:
    # A local cluster is started first: its workers spawn and import Beam
    # while this process imports it too, loads the job's reference tables and
    # builds the graph (see pipelines.runner._local_cluster). So the job
    # factory imports its job module only when called.
    with runner_context(runner, dask_address, dask_workers, list(ctx.args)) as beam_args:
        from pipelines import startup_gc
        with startup_gc.paused():  # Beam's import and the job's reference tables (see startup_gc)
            from pipelines.batch import RunSettings, execute
            from pipelines.manifest import AccountingError
            job = job_factory()
        try:
            with startup_gc.thawed():
                doc = execute(job, RunSettings(out=out, inputs=inputs, run_id=run_id, now=parse_now(now),
                                               logical_date=logical_date, beam_args=beam_args,
                                               n_buckets=buckets, progress=not quiet))
        except AccountingError as e:
            raise click.ClickException(f"accounting check failed, nothing committed: {e}")
    if not quiet:
        from pipelines.summary import print_summary  # rich: 20 ms of start-up saved where it is not needed
        print_summary(doc, out)
    return doc


@click.group("batch")
def batch() -> None:
    """Run a batch pipeline over input files."""


@batch.command("witness", context_settings=BEAM_CONTEXT)
@click.option("--beacons", multiple=True, required=True, help="beacon files: path or glob (repeatable)")
@click.option("--witnesses", multiple=True, required=True, help="witness files: path or glob (repeatable)")
@click.option("--registry", required=True, help="gateway registry: CSV, JSON Lines or Parquet")
@click.option("--denylist", default=None, help="deny list: pub_key[,witness_key] rows")
@click.option("--entropy", default=None, help="entropy table: data,timestamp(ms) rows")
@common_options
@click.pass_context
def batch_witness(ctx, beacons, witnesses, registry, denylist, entropy, rules_file, **kw):
    """Verify beacon and witness reports (Helium PoC rules).

    Extra arguments are Beam pipeline options, e.g. --direct_num_workers=2."""
    def job():  # imported here, after a local cluster has started (see run_and_report)
        from pipelines.witness_batch import witness_job
        return witness_job(registry, denylist, entropy, rules_file)
    run_and_report(ctx, job, {"beacon": list(beacons), "witness": list(witnesses)}, **kw)


@click.group("generate")
def generate() -> None:
    """Generate realistic synthetic inputs (sample data, benchmarks)."""


@generate.command("witness")
@click.option("--rows", type=int, default=5000, show_default=True, help="≈ number of witness reports")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--files", type=int, default=4, show_default=True, help="witness files to split into")
@click.option("--bad-rate", type=float, default=0.0, show_default=True, help="extra fault rate for scale runs")
@click.option("--out", required=True)
def generate_witness(rows, seed, files, bad_rate, out):
    """Beacons, witnesses, registry, deny list and entropy around three real cities."""
    from pipelines.generate.witness import generate as gen
    counts = gen(out, rows=rows, seed=seed, files=files, bad_rate=bad_rate)
    click.echo(f"wrote {counts['witnesses']:,} witnesses, {counts['beacons']:,} beacons, "
               f"{counts['hotspots']:,} hotspots, {counts['malformed']} malformed lines to {out}")


commands = [batch, generate]
