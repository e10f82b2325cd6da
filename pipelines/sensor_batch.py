"""The sensor batch job: weather-station packets + station registry →
flagged packets, hourly QoD and daily QoD/PoL as Parquet.

Graph (Arrow tables inside each step; shard references between steps):
  files → Read+shard(station_id) → GBK(station bucket)
        → VerifyStations+write(sensor, sensor_hourly, sensor_daily) → receipts

VerifyStations emits (table, (part, table)); `Fused` routes each tag to that
table's writer inside the same task, so only receipts leave it (on the
DaskRunner a separate ParDo per writer would materialise every table of a
bucket for every consumer; see transforms/beam/fuse.py). Which station-days
are scored: transforms/sensor/days.py. Only the `sensor` table (and
quarantine) carries `source_uri`, so only it is accounted against input
files; hourly/daily are derived (`OutputTable(accounted=False)`).
"""
from __future__ import annotations

from typing import Iterable

import apache_beam as beam

from pipelines.batch import BatchJob, OutputTable, Stage
from schemas.sensor import SENSOR_DAILY, SENSOR_HOURLY, SENSOR_OUT
from transforms.beam.fuse import Fused
from transforms.beam.sensor import VerifyStations
from transforms.fileio import InputError
from transforms.rules import describe, load_overrides
from transforms.sensor.days import CONTEXT_MS
from transforms.sensor.qod import day_number
from transforms.sensor.rules import SENSOR_RULES
from transforms.sensor.source import READING, load_station_registry


def _check_days(days: Iterable | None) -> list[str] | None:
    if days is None:
        return None
    out = []
    for d in days:
        try:
            day_number(d)
        except (TypeError, ValueError):
            raise InputError(f"--days: not a date (YYYY-MM-DD): {d!r}") from None
        out.append(str(d))
    return sorted(set(out))


def sensor_job(stations: str, rules_file: str | None = None, days: Iterable | None = None) -> BatchJob:
    """Load and check the station registry in the driver: a bad registry fails
    here with one clear line, before any worker starts. `days` (YYYY-MM-DD):
    score exactly these UTC days; default: every day with packets except
    days that are only the 6 h context of the next (transforms/sensor/days.py)."""
    registry_t, problems = load_station_registry(stations)
    consts = SENSOR_RULES.resolve(load_overrides(rules_file, "sensor"))
    days = _check_days(days)

    def build(stage: Stage, shards: dict) -> list:
        uri = stage.stage_ref("stations", registry_t)
        writers = {name: stage.writer(job, name) for name in ("sensor", "sensor_hourly", "sensor_daily")}
        return [(shards["reading"]
                 | "GroupByStation" >> beam.GroupByKey()
                 | "VerifyAndWrite" >> beam.ParDo(Fused(
                     VerifyStations({"registry": uri}, consts, stage.now_ms, days), writers))
                 | "Receipts" >> beam.Values())]

    job = BatchJob(
        source="sensor",
        specs={"reading": READING},
        tables={"sensor": OutputTable(SENSOR_OUT, "timestamp"),
                "sensor_hourly": OutputTable(SENSOR_HOURLY, "hour_start", accounted=False),
                "sensor_daily": OutputTable(SENSOR_DAILY, "day", accounted=False)},
        build=build,
        shard_keys={"reading": ("station", "station_id")},
        rules={"version": consts.version,
               "sensor": {"version": consts.version, "constants": dict(consts.values),
                          "table": describe(SENSOR_RULES, consts)}},
        rules_version=consts.version,
        extra_manifest={"references": {"stations": stations, "stations_rows": registry_t.num_rows,
                                       "stations_problems": problems},
                        "scoring": {"days": days or "auto", "context_hours": CONTEXT_MS // 3_600_000}},
    )
    return job
