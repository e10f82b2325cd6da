"""Beam step of the sensor job: verify every packet of a bucket of stations
and score their station-days (all packets of a station share a bucket, so the
rolling checks see the whole series whichever files it came in)."""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from schemas.provenance import SOURCE_FIELDS
from schemas.sensor import RAW_READING
from transforms.beam.coders import ArrowTableCoder  # noqa: F401 (registers the coder)
from transforms.beam.shuffle import load_group
from transforms.beam.witness import _WithRefs
from transforms.rules import Constants
from transforms.sensor.days import verify_bucket

_RAW = pa.schema(list(RAW_READING) + list(SOURCE_FIELDS))
TABLES = ("sensor", "sensor_hourly", "sensor_daily")


@beam.typehints.with_output_types(beam.typehints.Tuple[str, beam.typehints.Tuple[str, pa.Table]])
class VerifyStations(_WithRefs):
    """(station bucket, shard refs) → ('sensor' | 'sensor_hourly' | 'sensor_daily', (part, table))."""

    def __init__(self, refs: dict[str, str | None], consts: Constants, now_ms: int, days: list[str] | None = None):
        super().__init__(refs, consts, now_ms)
        self.days = days

    def process(self, element):
        (bucket, _), refs = element
        readings = load_group(refs, {"reading": _RAW})["reading"]
        out = verify_bucket(readings, self._ref("registry"), self.consts, self.now_ms, self.days)
        part = f"b{bucket:05d}"
        for tag, t in zip(TABLES, out):
            if t.num_rows:
                yield tag, (part, t)
