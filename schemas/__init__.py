"""The single source of truth for every input and output schema.

`SCHEMAS` maps the names accepted by `hexsieve schema NAME` to Arrow schemas.
"""
from __future__ import annotations

import pyarrow as pa

from schemas import imagery, quarantine, witness
from schemas import sensor

SCHEMAS: dict[str, pa.Schema] = {
    "raw_beacon": witness.RAW_BEACON,
    "raw_witness": witness.RAW_WITNESS,
    "gateway_registry": witness.GATEWAY_REGISTRY,
    "denylist": witness.DENYLIST,
    "entropy": witness.ENTROPY,
    "beacon": witness.BEACON_OUT,
    "witness": witness.WITNESS_OUT,
    "quarantine": quarantine.QUARANTINE,
    "raw_reading": sensor.RAW_READING,
    "station_registry": sensor.STATION_REGISTRY,
    "sensor": sensor.SENSOR_OUT,
    "sensor_hourly": sensor.SENSOR_HOURLY,
    "sensor_daily": sensor.SENSOR_DAILY,
    "raw_frame": imagery.RAW_FRAME,
    "device_registry": imagery.DEVICE_REGISTRY,
    "imagery": imagery.IMAGERY_OUT,
}


def get_schema(name: str) -> pa.Schema:
    try:
        return SCHEMAS[name]
    except KeyError:
        raise KeyError(f"unknown schema {name!r}; known: {', '.join(sorted(SCHEMAS))}") from None


def register(name: str, s: pa.Schema) -> None:
    """Called by source schema modules so a new source is one import away."""
    SCHEMAS[name] = s
