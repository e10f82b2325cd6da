"""Hand-built weather-station scenarios: a registry in Athens and helpers to
make smooth, clean packet streams that tests then damage on purpose."""
from __future__ import annotations

import math

import h3
import pyarrow as pa

from schemas.provenance import SOURCE_FIELDS
from schemas.sensor import RAW_READING, STATION_REGISTRY
from transforms.sensor.rules import SENSOR_RULES
from transforms.sensor.verify import verify_readings

LAT, LON = 37.9838, 23.7275
CLAIM = h3.latlng_to_cell(LAT, LON, 7)
DAY = 20_522                      # 2026-03-10, days since epoch
D0 = DAY * 86_400_000             # its midnight, ms
HOUR = 3_600_000
NOW = D0 + 2 * 86_400_000
STEP = {"WS1000": 16, "WS2000": 180}


def smooth(i: int) -> dict:
    """Plausible, never-repeating values for packet number i (no rule fires)."""
    return {
        "temperature": 20 + 0.5 * math.sin(i * 0.3),
        "humidity": 60 + 2 * math.sin(i * 0.2),
        "pressure": 1010 + 0.2 * math.sin(i * 0.1),
        "wind_speed": 3 + math.sin(i * 0.7),
        "wind_direction": 180 + 40 * math.sin(i * 0.5),
        "illuminance": 20_000 + 1_000 * math.sin(i * 0.4),
        "precipitation_accumulated": 1.0,
    }


def stream(station: str, model: str, start_ms: int, end_ms: int, **fixed) -> list[dict]:
    """Packets every model interval in [start_ms, end_ms); `fixed` overrides values."""
    step = STEP[model] * 1000
    rows = []
    for i, t in enumerate(range(start_ms, end_ms, step)):
        r = {"station_id": station, "model": model, "timestamp": t, **smooth(i)}
        r.update(fixed)
        rows.append(r)
    return rows


def registry(*stations: tuple[str, str] | tuple[str, str, str]) -> pa.Table:
    """(station_id, model[, claimed cell hex]) → STATION_REGISTRY table."""
    ids = [s[0] for s in stations]
    models = [s[1] for s in stations]
    cells = [int(s[2] if len(s) > 2 else CLAIM, 16) for s in stations]
    return pa.table({"station_id": ids, "model": models, "claimed_cell": pa.array(cells, pa.uint64()),
                     "claimed_at": pa.array([0] * len(ids), pa.int64())}, schema=STATION_REGISTRY)


def table(rows: list[dict], uri: str = "mem://readings.jsonl") -> pa.Table:
    """Packets as `transforms.parse.read_file` yields them: canonical columns + source columns."""
    cols = {f.name: pa.array([r.get(f.name) for r in rows], f.type) for f in RAW_READING}
    n = len(rows)
    cols["source_uri"] = pa.array([r.get("_uri", uri) for r in rows], pa.string())
    cols["source_record"] = pa.array([r.get("_rec", i + 1) for i, r in enumerate(rows)], pa.int64())
    cols["source_sha256"] = pa.array(["0" * 64] * n, pa.string())
    cols["record_sha256"] = pa.array([f"{i:064x}" for i in range(n)], pa.string())
    return pa.table(cols, schema=pa.schema(list(RAW_READING) + list(SOURCE_FIELDS)))


def run(rows, reg, now=NOW, days=None, **overrides):
    consts = SENSOR_RULES.resolve(overrides)
    return verify_readings(table(rows), reg, consts, now, days=days)


def flags_at(out: pa.Table, variable: str, station: str, t: int) -> list[str]:
    for r in out.to_pylist():
        if r["station_id"] == station and r["timestamp"] == t:
            return r[f"{variable}_flags"]
    raise AssertionError(f"no packet {station} @ {t}")


def reasons_at(out: pa.Table, station: str, t: int) -> list[list[str]]:
    return [r["reasons"] for r in out.to_pylist() if r["station_id"] == station and r["timestamp"] == t]
