"""`hexsieve.toml`: what a scheduled `hexsieve run` needs, in one file.

Relative paths resolve against the config file's directory, so a config
checked in next to its data works from any working directory. Landing globs
may contain `{date}` (YYYY-MM-DD), `{yyyy}`, `{mm}` and `{dd}`, filled with
the run's `--date`; that is how a run finds the files of one date. Unknown
keys are errors (a typo must not silently fall back to a default).
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date as Date


class ConfigError(Exception):
    """A problem in hexsieve.toml, reported as one line naming the file and key."""


@dataclass(frozen=True)
class SourceDef:
    """How a `[sources.<name>]` section maps onto a batch job."""
    module: str
    factory: str
    inputs: dict[str, str]               # config key → input kind (landing globs)
    refs: dict[str, bool]                # reference file key → required
    open_schema: bool = False            # section may use [inputs]/[refs]/[options] sub-tables


SOURCES: dict[str, SourceDef] = {
    "witness": SourceDef("pipelines.witness_batch", "witness_job",
                         inputs={"beacons": "beacon", "witnesses": "witness"},
                         refs={"registry": True, "denylist": False, "entropy": False}),
    # Built by other pipelines; their keys are passed through to the job factory.
    "imagery": SourceDef("pipelines.imagery_batch", "imagery_job", inputs={"frames": "frame"},
                         refs={"devices": False}),
    "sensor": SourceDef("pipelines.sensor_batch", "sensor_job", inputs={"readings": "reading"},
                        refs={"stations": True}),
}


@dataclass
class SourceConfig:
    name: str
    inputs: dict[str, list[str]]          # kind → glob templates (absolute, placeholders unfilled)
    refs: dict[str, str | None]           # factory keyword → absolute path
    options: dict = field(default_factory=dict)


@dataclass
class BeamConfig:
    runner: str = "direct"
    args: list[str] = field(default_factory=list)
    dask_address: str | None = None
    dask_workers: int | None = None


@dataclass
class Config:
    path: str
    out: str
    ledger: str
    sources: dict[str, SourceConfig]
    rules: dict[str, dict]
    beam: BeamConfig
    retention_days: int | None = None

    @property
    def rules_file(self) -> str | None:
        """The config file itself carries `[rules.<ruleset>]` overrides."""
        return self.path if self.rules else None


TOP_KEYS = {"output", "sources", "rules", "beam", "retention"}
PLACEHOLDER = re.compile(r"\{([a-z]+)\}")
KNOWN_PLACEHOLDERS = {"date", "yyyy", "mm", "dd"}


def _check_keys(where: str, got: dict, allowed: set[str], path: str) -> None:
    extra = sorted(set(got) - allowed)
    if extra:
        raise ConfigError(f"{path}: unknown key(s) in {where}: {', '.join(extra)} "
                          f"(allowed: {', '.join(sorted(allowed))})")


def _str(v, where: str, path: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{path}: {where} must be a non-empty string, got {v!r}")
    return v


def _resolve(base: str, p: str) -> str:
    if "://" in p or os.path.isabs(p):
        return p
    return os.path.normpath(os.path.join(base, p))


def _globs(v, where: str, path: str, base: str) -> list[str]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
        raise ConfigError(f"{path}: {where} must be a glob or a list of globs")
    for g in v:
        bad = set(PLACEHOLDER.findall(g)) - KNOWN_PLACEHOLDERS
        if bad:
            raise ConfigError(f"{path}: {where}: unknown placeholder {{{sorted(bad)[0]}}} in {g!r} "
                              f"(use {{date}}, {{yyyy}}, {{mm}}, {{dd}})")
    return [_resolve(base, g) for g in v]


def load(path: str) -> Config:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from None
    path = os.path.abspath(path)
    base = os.path.dirname(path)
    _check_keys("the top level", doc, TOP_KEYS, path)

    output = doc.get("output")
    if not isinstance(output, dict) or "root" not in output:
        raise ConfigError(f"{path}: missing [output] root = \"…\" (the output root)")
    _check_keys("[output]", output, {"root", "ledger"}, path)
    out = _resolve(base, _str(output["root"], "[output] root", path)).rstrip("/")
    ledger = output.get("ledger") or ""
    ledger = _resolve(base, ledger) if ledger else os.path.join(out, "_ledger.duckdb")
    if "://" in ledger:
        raise ConfigError(f"{path}: [output] ledger must be a local path (DuckDB file), got {ledger}")

    srcs = doc.get("sources")
    if not isinstance(srcs, dict) or not srcs:
        raise ConfigError(f"{path}: no [sources.<name>] section (known sources: {', '.join(SOURCES)})")
    sources = {}
    for name, sec in srcs.items():
        if name not in SOURCES:
            raise ConfigError(f"{path}: unknown source [sources.{name}] (known: {', '.join(SOURCES)})")
        if not isinstance(sec, dict):
            raise ConfigError(f"{path}: [sources.{name}] must be a table")
        sources[name] = _source(name, sec, SOURCES[name], path, base)

    rules = doc.get("rules", {})
    if not isinstance(rules, dict) or not all(isinstance(v, dict) for v in rules.values()):
        raise ConfigError(f"{path}: [rules.<ruleset>] sections must be tables of constants")

    beam_sec = doc.get("beam", {})
    _check_keys("[beam]", beam_sec, {"runner", "args", "dask_address", "dask_workers"}, path)
    runner = beam_sec.get("runner", "direct")
    if runner not in ("direct", "dask"):
        raise ConfigError(f"{path}: [beam] runner must be \"direct\" or \"dask\", got {runner!r}")
    args = beam_sec.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"{path}: [beam] args must be a list of strings")
    workers = beam_sec.get("dask_workers") or None
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"{path}: [beam] dask_workers must be a positive integer")
    beam = BeamConfig(runner, list(args), beam_sec.get("dask_address") or None, workers)

    ret = doc.get("retention", {})
    _check_keys("[retention]", ret, {"days"}, path)
    days = ret.get("days") or None
    if days is not None and (not isinstance(days, int) or isinstance(days, bool) or days < 1):
        raise ConfigError(f"{path}: [retention] days must be a positive integer (0 or absent: keep everything)")
    return Config(path=path, out=out, ledger=ledger, sources=sources, rules=rules, beam=beam, retention_days=days)


def _source(name: str, sec: dict, sd: SourceDef, path: str, base: str) -> SourceConfig:
    where = f"[sources.{name}]"
    inputs: dict[str, list[str]] = {}
    refs: dict[str, str | None] = {}
    options: dict = {}
    if sd.open_schema:
        _check_keys(where, sec, set(sd.inputs) | {"inputs", "refs", "options"}, path)
        for key, kind in sd.inputs.items():
            if key in sec:
                inputs[kind] = _globs(sec[key], f"{where} {key}", path, base)
        for kind, g in (sec.get("inputs") or {}).items():
            inputs[kind] = _globs(g, f"{where}.inputs {kind}", path, base)
        for k, v in (sec.get("refs") or {}).items():
            refs[k] = _resolve(base, _str(v, f"{where}.refs {k}", path))
        options = dict(sec.get("options") or {})
    else:
        _check_keys(where, sec, set(sd.inputs) | set(sd.refs), path)
        for key, kind in sd.inputs.items():
            if key not in sec:
                raise ConfigError(f"{path}: {where} is missing {key} = [\"glob\", …]")
            inputs[kind] = _globs(sec[key], f"{where} {key}", path, base)
        for key, required in sd.refs.items():
            if key in sec and sec[key] != "":
                refs[key] = _resolve(base, _str(sec[key], f"{where} {key}", path))
            elif required:
                raise ConfigError(f"{path}: {where} is missing {key} = \"path\"")
            else:
                refs[key] = None
    if not inputs:
        raise ConfigError(f"{path}: {where} lists no landing globs")
    return SourceConfig(name, inputs, refs, options)


def fill(template: str, day: Date) -> str:
    """Expand the date placeholders of a landing glob."""
    return (template.replace("{date}", day.isoformat()).replace("{yyyy}", f"{day.year:04d}")
            .replace("{mm}", f"{day.month:02d}").replace("{dd}", f"{day.day:02d}"))


def parse_date(value: str) -> Date:
    try:
        return Date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--date must be YYYY-MM-DD, got {value!r}") from None
