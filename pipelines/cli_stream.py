"""`hexsieve stream`: continuous ingest from landing folders (see docs/streaming.md)."""
from __future__ import annotations

import re

import click

from pipelines.cli_batch import BEAM_CONTEXT, parse_now

STREAM_SOURCES = ("witness", "imagery", "sensor")  # factories: pipelines/stream_<source>.py


def parse_duration(value: str, name: str) -> int:
    """'10m', '30s', '1500ms', '2h' or plain seconds → milliseconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(value))
    if not m:
        raise click.BadParameter(f"not a duration: {value!r} (e.g. 30s, 10m, 1500ms)", param_hint=name)
    return int(float(m.group(1)) * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[m.group(2) or "s"])


def stream_globs(templates: list[str]) -> list[str]:
    """A scheduled run fills `{date}`/`{yyyy}`/`{mm}`/`{dd}` with its one date;
    a stream has no date and must see every date's files as they land, so each
    placeholder becomes `*`."""
    from pipelines.config import PLACEHOLDER
    return [PLACEHOLDER.sub("*", t) for t in templates]


def _load_config(config: str | None):
    if not config:
        return None
    from pipelines.config import ConfigError, load
    try:
        return load(config)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


def _source_from(name: str, conf, opts: dict, out: str):
    """(StreamSource, kind → landing globs) from the options, then the config's
    [sources.<name>]; explicit options win over the config."""
    sec = conf.sources.get(name) if conf is not None else None
    if conf is not None and sec is None and not opts["explicit"].get(name):
        raise click.ClickException(f"stream: {conf.path} has no [sources.{name}] section")
    cinputs = {k: stream_globs(v) for k, v in (sec.inputs.items() if sec else [])}
    crefs = dict(sec.refs) if sec else {}
    rules_file = opts["rules_file"] or (conf.rules_file if conf is not None else None)
    pick = lambda opt, kind: list(opts[opt]) or cinputs.get(kind, [])  # noqa: E731
    if name == "witness":
        from pipelines.stream_witness import witness_source
        inputs = {"beacon": pick("beacons", "beacon"), "witness": pick("witnesses", "witness")}
        registry = opts["registry"] or crefs.get("registry")
        if not (inputs["beacon"] and inputs["witness"] and registry):
            raise click.ClickException("stream witness needs --beacons, --witnesses and --registry (or --config)")
        return witness_source(out, registry, opts["denylist"] or crefs.get("denylist"),
                              opts["entropy"] or crefs.get("entropy"), rules_file), inputs
    if name == "imagery":
        from pipelines.stream_imagery import imagery_source
        inputs = {"frame": pick("frames", "frame")}
        if not inputs["frame"]:
            raise click.ClickException("stream imagery needs --frames (or --config)")
        return imagery_source(opts["devices"] or crefs.get("devices"), rules_file, out), inputs
    from pipelines.stream_sensor import sensor_source
    inputs = {"reading": pick("readings", "reading")}
    stations = opts["stations"] or crefs.get("stations")
    if not (inputs["reading"] and stations):
        raise click.ClickException("stream sensor needs --readings and --stations (or --config)")
    return sensor_source(stations, rules_file, out), inputs


@click.command("stream", context_settings=BEAM_CONTEXT)
@click.option("--config", default=None, help="hexsieve.toml: [output] root/ledger and [sources.<name>] globs "
              "({date}-style placeholders match any date)")
@click.option("--source", "sources", multiple=True, type=click.Choice(STREAM_SOURCES),
              help="source to stream (repeatable; default: every source in --config, else witness)")
@click.option("--beacons", multiple=True, help="beacon landing glob (repeatable)")
@click.option("--witnesses", multiple=True, help="witness landing glob (repeatable)")
@click.option("--registry", default=None, help="gateway registry: CSV, JSON Lines or Parquet")
@click.option("--denylist", default=None)
@click.option("--entropy", default=None)
@click.option("--frames", multiple=True, help="imagery frame landing glob (repeatable)")
@click.option("--devices", default=None, help="imagery device registry (optional)")
@click.option("--readings", multiple=True, help="sensor reading landing glob (repeatable)")
@click.option("--stations", default=None, help="sensor station registry")
@click.option("--rules", "rules_file", default=None, help="TOML file overriding rule constants")
@click.option("--out", default=None, help="output root (same layout as batch); default: the config's [output] root")
@click.option("--ledger", default=None, help="ingest ledger (DuckDB); default: the config's, else OUT/_ledger.duckdb")
@click.option("--now", default=None, help="fixed processing time, ISO 8601 (replays/tests; default: wall clock)")
@click.option("--allowed-lateness", default="10m", show_default=True,
              help="records further behind the watermark than this are written with reason 'late'")
@click.option("--max-delay", default="5s", show_default=True,
              help="watermark = max event time seen − this (bounded out-of-orderness)")
@click.option("--poll", default="0.25s", show_default=True, help="how often to list the landing globs")
@click.option("--max-files", type=int, default=None, help="stop after this many files per source (then drain)")
@click.option("--idle-timeout", default=None, help="stop when no file landed for this long (then drain)")
@click.option("--drain/--no-drain", default=None,
              help="at a --max-files/--idle-timeout stop, flush open windows as if input ended (default: drain)")
@click.option("--batch-files", type=int, default=64, show_default=True, help="max files per micro-batch")
@click.option("--runner", default="direct", show_default=True, help="Beam runner for each micro-batch")
@click.option("--quiet", is_flag=True)
@click.pass_context
def stream_cmd(ctx, config, sources, beacons, witnesses, registry, denylist, entropy, frames, devices, readings,
               stations, rules_file, out, ledger, now, allowed_lateness, max_delay, poll, max_files, idle_timeout,
               drain, batch_files, runner, quiet):
    """Watch landing folders and validate new files continuously, in event-time windows.

    Extra arguments are Beam pipeline options for each micro-batch's pipeline."""
    if runner.lower() in ("dask", "daskrunner") or any("dask" in a.lower() for a in ctx.args if a.startswith("--runner")):
        raise click.ClickException("stream: the DaskRunner is batch only; use --runner direct (or a Flink runner)")
    conf = _load_config(config)
    out = out or (conf.out if conf is not None else None)
    if not out:
        raise click.ClickException("stream needs --out (or --config with [output] root)")
    if ledger is None and conf is not None and out == conf.out:
        ledger = conf.ledger  # else --out moved the output, and the ledger goes with it (OUT/_ledger.duckdb)
    explicit = {"witness": bool(beacons or witnesses), "imagery": bool(frames), "sensor": bool(readings)}
    names = list(dict.fromkeys(sources)) or ([n for n in STREAM_SOURCES if n in conf.sources] if conf else ["witness"])
    opts = {"beacons": beacons, "witnesses": witnesses, "registry": registry, "denylist": denylist,
            "entropy": entropy, "frames": frames, "devices": devices, "readings": readings, "stations": stations,
            "rules_file": rules_file, "explicit": explicit}
    from pipelines.stream import Stream, StreamSettings, install_signals
    beam_args = list(ctx.args) + ([f"--runner={runner}"] if runner != "direct" else [])
    streams = []
    for name in names:
        src, inputs = _source_from(name, conf, opts, out)
        log = (lambda m: None) if quiet else (lambda m: click.echo(m, err=True))
        s = StreamSettings(out=out, inputs=inputs, now=parse_now(now),
                           poll_s=parse_duration(poll, "--poll") / 1000, max_files=max_files,
                           idle_timeout_s=parse_duration(idle_timeout, "--idle-timeout") / 1000 if idle_timeout else None,
                           drain=drain, batch_files=batch_files,
                           allowed_lateness_ms=parse_duration(allowed_lateness, "--allowed-lateness"),
                           max_delay_ms=parse_duration(max_delay, "--max-delay"), beam_args=beam_args, log=log,
                           ledger=ledger)
        streams.append(Stream(src, s))
    install_signals(*streams)
    if not quiet:
        click.echo(f"streaming {', '.join(names)} into {out} (Ctrl-C stops after the running micro-batch)", err=True)
    results = _run_all(streams)
    failed = [(st.name, r) for st, r in zip(streams, results) if isinstance(r, BaseException)]
    if not quiet:
        for st, res in zip(streams, results):
            if isinstance(res, BaseException):
                continue
            click.echo(f"stopped{'' if len(streams) == 1 else ' ' + st.name}: {res['files']} file(s), "
                       f"{res['micro_batches']} micro-batch(es)"
                       + (", drained" if res["drained"] else ", open windows kept for restart"), err=True)
    if failed:
        name, e = failed[0]
        if isinstance(e, KeyboardInterrupt):
            raise e
        msg = str(e) if isinstance(e, RuntimeError) else f"{type(e).__name__}: {e}"
        raise click.ClickException(msg if len(streams) == 1 else f"{name}: {msg}")


def _run_all(streams) -> list:
    """Several sources share one process as one thread each: every stream is
    independent (own lock, state, micro-batches) except that their Beam runs
    take turns (`stream._ENGINE_LOCK`); the driver loop mostly waits on Beam
    or the poll interval. One failing stops the others."""
    if len(streams) == 1:
        try:
            return [streams[0].run()]
        except RuntimeError as e:
            return [e]
    import threading
    results: list = [None] * len(streams)

    def run(i):
        try:
            results[i] = streams[i].run()
        except BaseException as e:  # noqa: BLE001 (reported by the main thread)
            results[i] = e
            for other in streams:
                other.stop.set()

    threads = [threading.Thread(target=run, args=(i,), name=f"stream-{s.name}", daemon=True)
               for i, s in enumerate(streams)]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)  # the main thread keeps receiving signals
    return results


commands = [stream_cmd]
