"""`hexsieve stream`: continuous ingest from landing folders (see docs/streaming.md)."""
from __future__ import annotations

import re

import click

from pipelines.cli_batch import BEAM_CONTEXT, parse_now

STREAM_SOURCES = ("witness",)  # imagery/sensor: add a *_source factory in pipelines/stream_<source>.py


def parse_duration(value: str, name: str) -> int:
    """'10m', '30s', '1500ms', '2h' or plain seconds → milliseconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(value))
    if not m:
        raise click.BadParameter(f"not a duration: {value!r} (e.g. 30s, 10m, 1500ms)", param_hint=name)
    return int(float(m.group(1)) * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[m.group(2) or "s"])


def _from_config(config: str | None, source: str) -> dict:
    """Landing globs and reference tables from hexsieve.toml, when the shared
    config module exists; explicit options override it."""
    if not config:
        return {}
    try:
        from pipelines import config as cfg
    except ImportError:
        raise click.ClickException("--config needs pipelines/config.py, which is not installed yet; "
                                   "give the globs explicitly (--beacons/--witnesses/--registry …)") from None
    loader = getattr(cfg, "load", None) or getattr(cfg, "load_config")
    conf = loader(config)
    src = conf.get("sources", {}).get(source, {}) if isinstance(conf, dict) else getattr(conf, "sources", {}).get(source, {})
    return dict(src) if not isinstance(src, dict) else src


@click.command("stream", context_settings=BEAM_CONTEXT)
@click.option("--config", default=None, help="hexsieve.toml with [sources.<name>] landing globs")
@click.option("--source", "sources", multiple=True, type=click.Choice(STREAM_SOURCES),
              help="source to stream (default: witness)")
@click.option("--beacons", multiple=True, help="beacon landing glob (repeatable)")
@click.option("--witnesses", multiple=True, help="witness landing glob (repeatable)")
@click.option("--registry", default=None, help="gateway registry: CSV, JSON Lines or Parquet")
@click.option("--denylist", default=None)
@click.option("--entropy", default=None)
@click.option("--rules", "rules_file", default=None, help="TOML file overriding rule constants")
@click.option("--out", required=True, help="output root (same layout as batch)")
@click.option("--now", default=None, help="fixed processing time, ISO 8601 (replays/tests; default: wall clock)")
@click.option("--allowed-lateness", default="10m", show_default=True,
              help="records further behind the watermark than this are written with reason 'late'")
@click.option("--max-delay", default="5s", show_default=True,
              help="watermark = max event time seen − this (bounded out-of-orderness)")
@click.option("--poll", default="0.25s", show_default=True, help="how often to list the landing globs")
@click.option("--max-files", type=int, default=None, help="stop after this many files (then drain)")
@click.option("--idle-timeout", default=None, help="stop when no file landed for this long (then drain)")
@click.option("--drain/--no-drain", default=None,
              help="at a --max-files/--idle-timeout stop, flush open windows as if input ended (default: drain)")
@click.option("--batch-files", type=int, default=64, show_default=True, help="max files per micro-batch")
@click.option("--runner", default="direct", show_default=True, help="Beam runner for each micro-batch")
@click.option("--quiet", is_flag=True)
@click.pass_context
def stream_cmd(ctx, config, sources, beacons, witnesses, registry, denylist, entropy, rules_file, out, now,
               allowed_lateness, max_delay, poll, max_files, idle_timeout, drain, batch_files, runner, quiet):
    """Watch landing folders and validate new files continuously, in event-time windows.

    Extra arguments are Beam pipeline options for each micro-batch's pipeline."""
    if runner.lower() in ("dask", "daskrunner") or any("dask" in a.lower() for a in ctx.args if a.startswith("--runner")):
        raise click.ClickException("stream: the DaskRunner is batch only; use --runner direct (or a Flink runner)")
    source = (sources or ("witness",))[0]
    if len(set(sources)) > 1:
        raise click.ClickException("stream: one --source per process (run one `hexsieve stream` per source)")
    conf = _from_config(config, source)
    beacons = list(beacons) or list(_as_list(conf.get("beacons")))
    witnesses = list(witnesses) or list(_as_list(conf.get("witnesses")))
    registry = registry or conf.get("registry")
    denylist = denylist or conf.get("denylist")
    entropy = entropy or conf.get("entropy")
    if not (beacons and witnesses and registry):
        raise click.ClickException("stream witness needs --beacons, --witnesses and --registry (or --config)")
    from pipelines.stream import Stream, StreamSettings, install_signals
    from pipelines.stream_witness import witness_source
    beam_args = list(ctx.args) + ([f"--runner={runner}"] if runner != "direct" else [])
    src = witness_source(out, registry, denylist, entropy, rules_file)
    log = (lambda m: None) if quiet else (lambda m: click.echo(m, err=True))
    s = StreamSettings(out=out, inputs={"beacon": beacons, "witness": witnesses}, now=parse_now(now),
                       poll_s=parse_duration(poll, "--poll") / 1000, max_files=max_files,
                       idle_timeout_s=parse_duration(idle_timeout, "--idle-timeout") / 1000 if idle_timeout else None,
                       drain=drain, batch_files=batch_files,
                       allowed_lateness_ms=parse_duration(allowed_lateness, "--allowed-lateness"),
                       max_delay_ms=parse_duration(max_delay, "--max-delay"), beam_args=beam_args, log=log)
    st = Stream(src, s)
    install_signals(st)
    if not quiet:
        click.echo(f"streaming {source} into {out} (Ctrl-C stops after the running micro-batch)", err=True)
    try:
        res = st.run()
    except RuntimeError as e:
        raise click.ClickException(str(e))
    if not quiet:
        click.echo(f"stopped: {res['files']} file(s), {res['micro_batches']} micro-batch(es)"
                   + (", drained" if res["drained"] else ", open windows kept for restart"), err=True)


def _as_list(v):
    if v is None:
        return []
    return [v] if isinstance(v, str) else list(v)


commands = [stream_cmd]
