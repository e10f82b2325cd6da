"""Weather-station telemetry (WeatherXM-style) inputs and validated outputs.

Variables and units follow WeatherXM's raw packets (see
`../shared/reference/sensor.md`). Flags are per variable because a buyer
usually wants "the temperature of this packet" even when its wind vane is
frozen: `<variable>_flags` lists the reason codes that made that variable
faulty, while `reasons` is the union over all variables plus the
record-level codes (duplicates, unknown station, …).
"""
import pyarrow as pa

from schemas._fields import field, schema
from schemas.provenance import PROVENANCE_FIELDS, RUN_FIELDS, VERDICT_FIELDS

MODELS = ("WS1000", "WS2000")

# (name in the score tables, raw column, unit, description)
VARIABLES = (
    ("temperature", "temperature", "°C", "air temperature"),
    ("humidity", "humidity", "% RH", "relative humidity"),
    ("pressure", "pressure", "hPa", "barometric pressure"),
    ("wind_speed", "wind_speed", "m/s", "wind speed"),
    ("wind_direction", "wind_direction", "deg", "wind direction, 0–359, clockwise from north"),
    ("illuminance", "illuminance", "lux", "illuminance"),
    ("precipitation", "precipitation_accumulated", "mm",
     "accumulated precipitation counter (0.254 mm steps)"),
)
VARIABLE_NAMES = tuple(v[0] for v in VARIABLES)
VARIABLE_COLUMNS = {v[0]: v[1] for v in VARIABLES}

_MEASURED = [field(col, pa.float64(), desc, unit=unit) for _, col, unit, desc in VARIABLES]
_GNSS = [
    field("lat", pa.float64(), "GNSS latitude reported with the packet (WGS84)", unit="deg"),
    field("lon", pa.float64(), "GNSS longitude reported with the packet (WGS84)", unit="deg"),
    field("gnss_accuracy_m", pa.float64(), "GNSS horizontal accuracy of the fix", unit="m"),
]

RAW_READING = schema([
    field("station_id", pa.string(), "station identifier", nullable=False),
    field("model", pa.string(), "station model: 'WS1000' (16 s packets) or 'WS2000' (180 s packets); "
          "null = take the registry's"),
    field("timestamp", pa.int64(), "packet time (input: ISO 8601 text or epoch s/ms, normalised)",
          unit="ms since Unix epoch", nullable=False),
    *_MEASURED,
    *_GNSS,
], "Raw weather-station packet, one row per packet")

# What the parser reads before `normalize` folds the two time fields into
# `timestamp`. pyarrow's JSON reader fixes one type per key, so epoch numbers
# and ISO text cannot share a key: numbers go in `timestamp`, text in
# `utc_datetime` (WeatherXM's own field name) — either may be given.
READING_INPUT = schema([
    field("station_id", pa.string(), "station identifier", nullable=False),
    field("model", pa.string(), "station model"),
    field("timestamp", pa.int64(), "packet time as epoch number (s, ms, µs or ns; detected by magnitude)",
          unit="ms since Unix epoch after normalisation"),
    *_MEASURED,
    *_GNSS,
    field("utc_datetime", pa.string(), "packet time as ISO 8601 text (UTC when no offset); "
          "used when `timestamp` is null"),
], "Parse-stage form of a weather-station packet (see RAW_READING)")

STATION_REGISTRY = schema([
    field("station_id", pa.string(), "station identifier", nullable=False),
    field("model", pa.string(), "'WS1000' or 'WS2000'"),
    field("claimed_cell", pa.uint64(), "claimed location, H3 res-7 cell (input: hex text or integer)",
          nullable=False),
    field("claimed_at", pa.int64(), "when the location was claimed", unit="ms since Unix epoch"),
], "Station registry; CSV, JSON Lines or Parquet; one row per station (latest claim wins)")

_FLAGS_DOC = ("reason codes that made this variable faulty in this packet (subset of "
              "out_of_bounds, spike, unidentified_spike, constant, long_constant, frozen_sensor, "
              "precipitation_reset, precipitation_rate); empty when the value is usable")

_READING_DERIVED = [
    field("claimed_cell", pa.uint64(), "station's claimed H3 res-7 cell (registry); null if unknown"),
    field("gnss_cell", pa.uint64(), "H3 res-7 cell of this packet's GNSS fix; null without a fix"),
    *[field(f"{name}_flags", pa.list_(pa.string()), f"{desc}: " + _FLAGS_DOC, nullable=False)
      for name, _, _, desc in VARIABLES],
]

SENSOR_OUT = schema(
    list(RAW_READING) + _READING_DERIVED + VERDICT_FIELDS + PROVENANCE_FIELDS,
    "Validated packets: OUT/sensor/date=YYYY-MM-DD/ (date of timestamp, UTC). A packet is "
    "'invalid' when any variable or record-level rule failed; the per-variable flag columns "
    "say which variables are still usable")

HOURLY_FLAGS = ("OBC", "SPIKE_INST", "UNIDENTIFIED_SPIKE", "NO_DATA", "SHORT_CONST", "LONG_CONST",
                "FROZEN_SENSOR")


def _per_variable_hourly() -> list[pa.Field]:
    out = []
    for name, _, _, desc in VARIABLES:
        out += [
            field(f"{name}_completeness_pct", pa.float64(),
                  f"{desc}: share of the hour's expected slots holding a value "
                  "(WS2000: 180 s packet slots; WS1000: minute slots, 2-minute for wind)", unit="%",
                  nullable=False),
            field(f"{name}_valid_pct", pa.float64(),
                  f"{desc}: share of the hour's expected slots that are valid", unit="%", nullable=False),
            field(f"{name}_score", pa.float64(), f"{desc}: hourly QoD score in [0, 1]", nullable=False),
            field(f"{name}_flags", pa.list_(pa.string()),
                  f"{desc}: hourly flags, subset of {', '.join(HOURLY_FLAGS)}", nullable=False),
        ]
    return out


SENSOR_HOURLY = schema([
    field("station_id", pa.string(), "station identifier", nullable=False),
    field("model", pa.string(), "station model the hour was scored as", nullable=False),
    field("hour_start", pa.timestamp("ms", tz="UTC"), "start of the UTC hour", unit="UTC", nullable=False),
    field("packets", pa.int32(), "packets of the station in the hour (after de-duplication)",
          nullable=False),
    field("expected_packets", pa.int32(), "packets the model sends per hour (225 or 20)", nullable=False),
    *_per_variable_hourly(),
    *RUN_FIELDS,
], "Hourly QoD per station: OUT/sensor_hourly/date=YYYY-MM-DD/ (date of hour_start). "
   "Every hour of every scored day has a row, silent hours included (score 0)")

POL_FLAGS = ("no_gnss", "outside_claimed_cell", "relocated")

SENSOR_DAILY = schema([
    field("station_id", pa.string(), "station identifier", nullable=False),
    field("model", pa.string(), "station model", nullable=False),
    # `day`, not `date`: `date` is the hive partition key of the output directory.
    field("day", pa.date32(), "UTC day scored", unit="UTC", nullable=False),
    *[field(f"{name}_score", pa.float64(), f"{desc}: mean of the day's 24 hourly scores",
            nullable=False) for name, _, _, desc in VARIABLES],
    field("qod_score", pa.float64(), "Quality of Data: mean of the 7 variable scores, in [0, 1]",
          nullable=False),
    field("hours_with_data", pa.int32(), "hours of the day with at least one packet", nullable=False),
    field("claimed_cell", pa.uint64(), "claimed H3 res-7 cell (registry)", nullable=False),
    field("gnss_fixes", pa.int32(), "accurate GNSS fixes of the previous UTC day", nullable=False),
    field("gnss_cell", pa.uint64(), "most frequent res-7 cell of those fixes; null without fixes"),
    field("pol_score", pa.float64(), "Proof of Location: 1 located as claimed, 0 otherwise",
          nullable=False),
    field("pol_flags", pa.list_(pa.string()), f"subset of {', '.join(POL_FLAGS)}", nullable=False),
    field("flags", pa.list_(pa.string()),
          "hourly flags seen during the day as '<variable>:<FLAG>', sorted", nullable=False),
    *VERDICT_FIELDS,
    *RUN_FIELDS,
], "Daily QoD and PoL per station: OUT/sensor_daily/date=YYYY-MM-DD/. 'valid' when "
   "qod_score ≥ qod_min and pol_score > 0 (the buyers' filter)")

__all__ = ["RAW_READING", "READING_INPUT", "STATION_REGISTRY", "SENSOR_OUT", "SENSOR_HOURLY",
           "SENSOR_DAILY", "VARIABLES", "VARIABLE_NAMES", "VARIABLE_COLUMNS", "MODELS",
           "HOURLY_FLAGS", "POL_FLAGS"]
