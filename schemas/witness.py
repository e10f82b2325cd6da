"""Helium proof-of-coverage inputs and the validated witness/beacon outputs.

Field names and units follow helium/proto `lora_beacon_report_req_v1` and
`lora_witness_report_req_v1` as the ingestor wraps them with
`received_timestamp`. Byte fields travel as base64 text (as in JSON dumps);
hotspot keys as their base58 text form.
"""
import pyarrow as pa

from schemas._fields import field, schema
from schemas.provenance import PROVENANCE_FIELDS, VERDICT_FIELDS

B64 = "base64 text of bytes"

RAW_BEACON = schema([
    field("pub_key", pa.string(), "beaconing hotspot key (base58)", nullable=False),
    field("local_entropy", pa.string(), B64),
    field("remote_entropy", pa.string(), B64 + "; entropy from the entropy service"),
    field("data", pa.string(), B64 + "; beacon payload, witnesses must report the same bytes",
          nullable=False),
    field("frequency", pa.uint64(), "transmit frequency", unit="Hz", nullable=False),
    field("channel", pa.int32(), "channel number"),
    field("datarate", pa.string(), "LoRa datarate, e.g. SF9BW125"),
    field("tx_power", pa.int32(), "conducted transmit power", unit="dBm", nullable=False),
    field("timestamp", pa.int64(), "transmit time by the device clock", unit="ns since Unix epoch",
          nullable=False),
    field("tmst", pa.uint32(), "concentrator counter", unit="µs"),
    field("signature", pa.string(), B64),
    field("received_timestamp", pa.int64(), "time the ingestor received the report",
          unit="ms since Unix epoch", nullable=False),
], "Raw beacon report (lora_beacon_report_req_v1 + received_timestamp)")

RAW_WITNESS = schema([
    field("pub_key", pa.string(), "witnessing hotspot key (base58)", nullable=False),
    field("data", pa.string(), B64 + "; payload heard, must equal the beacon's", nullable=False),
    field("timestamp", pa.int64(), "receive time by the device clock", unit="ns since Unix epoch",
          nullable=False),
    field("tmst", pa.uint32(), "concentrator counter", unit="µs"),
    field("signal", pa.int32(), "received signal strength", unit="ddBm (dBm×10)", nullable=False),
    field("snr", pa.int32(), "signal-to-noise ratio", unit="ddB (dB×10)", nullable=False),
    field("frequency", pa.uint64(), "receive frequency", unit="Hz", nullable=False),
    field("datarate", pa.string(), "LoRa datarate"),
    field("signature", pa.string(), B64),
    field("received_timestamp", pa.int64(), "time the ingestor received the report",
          unit="ms since Unix epoch", nullable=False),
], "Raw witness report (lora_witness_report_req_v1 + received_timestamp)")

GATEWAY_REGISTRY = schema([
    field("pub_key", pa.string(), "hotspot key (base58)", nullable=False),
    field("location", pa.uint64(), "asserted location, H3 cell (res 12 as asserted); null = not asserted"),
    field("gain", pa.int32(), "antenna gain", unit="dBi×10"),
    field("elevation", pa.int32(), "antenna height above ground", unit="m"),
    field("region", pa.string(), "LoRaWAN region, e.g. EU868, US915"),
    field("is_full_hotspot", pa.bool_(), "full hotspots can do PoC; data-only cannot"),
], "Gateway registry (chain/config service snapshot); CSV, JSON Lines or Parquet; "
   "location as H3 hex string or integer")

DENYLIST = schema([
    field("pub_key", pa.string(), "denied hotspot key, or the beaconer side of a denied edge",
          nullable=False),
    field("witness_key", pa.string(), "when set, only the (pub_key → witness_key) edge is denied"),
], "Deny list: hotspots and (beaconer, witness) edges")

ENTROPY = schema([
    field("data", pa.string(), B64 + "; entropy value (matches beacon remote_entropy)", nullable=False),
    field("timestamp", pa.int64(), "start of the entropy's validity", unit="ms since Unix epoch",
          nullable=False),
], "Entropy service values with their start times")

_BEACON_DERIVED = [
    field("beaconer_cell", pa.uint64(), "asserted H3 cell of the beaconer (registry)"),
    field("beaconer_region", pa.string(), "region of the beaconer (registry)"),
    field("witness_count", pa.int32(), "witness reports joined to this beacon"),
]

BEACON_OUT = schema(
    list(RAW_BEACON) + _BEACON_DERIVED + VERDICT_FIELDS + PROVENANCE_FIELDS,
    "Validated beacons: OUT/beacon/date=YYYY-MM-DD/ (date of received_timestamp, UTC)")

_WITNESS_DERIVED = [
    field("beacon_pub_key", pa.string(), "beaconer key of the matched beacon; null if none"),
    field("beacon_received_timestamp", pa.int64(), "matched beacon receive time",
          unit="ms since Unix epoch"),
    field("beacon_record_sha256", pa.string(), "record_sha256 of the matched beacon"),
    field("beaconer_cell", pa.uint64(), "asserted H3 cell of the beaconer"),
    field("witness_cell", pa.uint64(), "asserted H3 cell of the witness"),
    field("distance_m", pa.int64(), "great-circle distance between the two cell centres, rounded",
          unit="m"),
    field("expected_max_rssi_dbm", pa.float64(),
          "free-space ceiling on received signal: tx_power + gains − FSPL", unit="dBm"),
    field("lag_ms", pa.int64(), "witness received − reference received time (beacon or first witness)",
          unit="ms"),
    field("selected", pa.bool_(), "among the first N valid witnesses of the PoC (Helium selects 14)"),
    field("participant_side", pa.string(), "'beaconer' when the verdict comes from the beacon, else 'witness'"),
]

WITNESS_OUT = schema(
    list(RAW_WITNESS) + _WITNESS_DERIVED + VERDICT_FIELDS + PROVENANCE_FIELDS,
    "Validated witnesses: OUT/witness/date=YYYY-MM-DD/ (date of received_timestamp, UTC)")
