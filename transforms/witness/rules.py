"""The witness and beacon rule tables (Helium iot_verifier, re-expressed).

Each check reads a context dict of numpy arrays prepared by `verify.py` and
returns True where the row fails. Order follows the reference so the first
reason of a row is the one Helium would report. Codes are Helium's
`invalid_reason` names, plus hexsieve's own where Helium has none
(`beacon_not_found`, `future_timestamp`).
"""
from __future__ import annotations

import numpy as np

from transforms.rules import Rule, RuleSet

RULES_VERSION = "witness-1.0.0"


class Reason:
    """All reason codes this source can emit (an enum of strings)."""
    GATEWAY_NOT_FOUND = "gateway_not_found"
    NOT_ASSERTED = "not_asserted"
    DENIED = "denied"
    DENIED_EDGE = "denied_edge"
    INVALID_CAPABILITY = "invalid_capability"
    IRREGULAR_INTERVAL = "irregular_interval"
    BAD_ENTROPY = "bad_entropy"
    ENTROPY_EXPIRED = "entropy_expired"
    STALE = "stale"
    FUTURE_TIMESTAMP = "future_timestamp"
    BEACON_NOT_FOUND = "beacon_not_found"
    SELF_WITNESS = "self_witness"
    TOO_LATE = "too_late"
    INVALID_PACKET = "invalid_packet"
    INVALID_FREQUENCY = "invalid_frequency"
    INVALID_REGION = "invalid_region"
    BELOW_MIN_DISTANCE = "below_min_distance"
    MAX_DISTANCE_EXCEEDED = "max_distance_exceeded"
    BAD_RSSI = "bad_rssi"
    DUPLICATE = "duplicate"


R = Reason
_FRESHNESS = {"stale_after_ms": 45 * 60 * 1000, "future_skew_ms": 60 * 1000}


def _stale(x, c):
    # Freshness: the report reached the ingestor more than 45 min after the
    # device made it (Helium purges reports left unprocessed 45 min as stale).
    return (x["received"] - x["device_ms"]) > c["stale_after_ms"]


def _future(x, c):
    return (x["received"] > x["now_ms"] + c["future_skew_ms"]) | \
           (x["device_ms"] > x["received"] + c["future_skew_ms"])


BEACON_RULES = RuleSet("beacon", RULES_VERSION, (
    Rule("B01", R.GATEWAY_NOT_FOUND, "beaconer is in the gateway registry",
         lambda x, c: x["reg"] < 0, side="beaconer"),
    Rule("B02", R.NOT_ASSERTED, "beaconer has an asserted location",
         lambda x, c: (x["reg"] >= 0) & (x["cell"] == 0), side="beaconer"),
    Rule("B03", R.DENIED, "beaconer is not on the deny list",
         lambda x, c: x["denied"], side="beaconer"),
    Rule("B04", R.INVALID_CAPABILITY, "beaconer is a full hotspot (data-only cannot do PoC)",
         lambda x, c: (x["reg"] >= 0) & ~x["full"], side="beaconer"),
    Rule("B05", R.IRREGULAR_INTERVAL, "at most one beacon per gateway per fixed UTC bucket of received time",
         lambda x, c: x["irregular"], {"beacon_interval_ms": 6 * 3600 * 1000}, side="beaconer"),
    Rule("B06", R.BAD_ENTROPY, "remote entropy is known to the entropy service (when an entropy table is given)",
         lambda x, c: x["entropy_checked"] & (x["entropy_start"] < 0), side="beaconer"),
    Rule("B07", R.ENTROPY_EXPIRED, "received within [entropy start, start + window]",
         lambda x, c: x["entropy_checked"] & (x["entropy_start"] >= 0) & (
             (x["received"] < x["entropy_start"]) |
             (x["received"] > x["entropy_start"] + c["entropy_window_ms"])),
         {"entropy_window_ms": 180 * 1000}, side="beaconer"),
    Rule("B08", R.STALE, "received at most stale_after_ms after the device timestamp",
         _stale, _FRESHNESS, side="beaconer"),
    Rule("B09", R.FUTURE_TIMESTAMP, "not received after the run's now, nor device time after receipt (+skew)",
         _future, side="beaconer"),
))


def _lag_fail(x, c):
    has = x["beacon"] >= 0
    beacon_first = x["beacon_received"] <= x["first_witness"]
    late = np.where(beacon_first, x["received"] - x["beacon_received"] > c["beacon_lag_ms"],
                    x["received"] - x["first_witness"] > c["witness_lag_ms"])
    return has & late


WITNESS_RULES = RuleSet("witness", RULES_VERSION, (
    Rule("W01", R.INVALID_PACKET, "payload is well-formed base64 and equals the beacon payload",
         lambda x, c: x["bad_payload"], side="witness"),
    Rule("W02", R.BEACON_NOT_FOUND, "a beacon with the same payload was received within the join window",
         lambda x, c: (x["beacon"] < 0) & ~x["bad_payload"], {"join_window_ms": 10 * 60 * 1000},
         side="witness"),
    Rule("W03", R.GATEWAY_NOT_FOUND, "witness is in the gateway registry",
         lambda x, c: x["reg"] < 0, side="witness"),
    Rule("W04", R.NOT_ASSERTED, "witness has an asserted location",
         lambda x, c: (x["reg"] >= 0) & (x["cell"] == 0), side="witness"),
    Rule("W05", R.DENIED, "witness is not on the deny list",
         lambda x, c: x["denied"], side="witness"),
    Rule("W06", R.DENIED_EDGE, "the (beaconer, witness) edge is not on the deny list",
         lambda x, c: x["denied_edge"], side="witness"),
    Rule("W07", R.SELF_WITNESS, "witness key differs from the beaconer key",
         lambda x, c: x["self"], side="witness"),
    Rule("W08", R.TOO_LATE, "received ≤ 4000 ms after the beacon, or ≤ 1500 ms after the first witness when that came first",
         _lag_fail, {"beacon_lag_ms": 4000, "witness_lag_ms": 1500}, side="witness"),
    Rule("W09", R.INVALID_CAPABILITY, "witness is a full hotspot",
         lambda x, c: (x["reg"] >= 0) & ~x["full"], side="witness"),
    Rule("W10", R.INVALID_FREQUENCY, "|beacon f − witness f| ≤ max_frequency_delta_hz",
         lambda x, c: (x["beacon"] >= 0) & (np.abs(x["frequency"] - x["beacon_frequency"]) > c["max_frequency_delta_hz"]),
         {"max_frequency_delta_hz": 100_000}, side="witness"),
    Rule("W11", R.INVALID_REGION, "witness region equals the beaconer region",
         lambda x, c: x["pair_known"] & (x["region"] != x["beacon_region"]), side="witness"),
    Rule("W12", R.BELOW_MIN_DISTANCE, "res-11 parents are ≥ min_grid_distance cells apart (H3 errors count as below)",
         lambda x, c: x["pair_known"] & (x["grid_distance"] < c["min_grid_distance"]),
         {"min_distance_res": 11, "min_grid_distance": 8}, side="witness"),
    Rule("W13", R.MAX_DISTANCE_EXCEEDED, "whole km between cell centres ≤ max_distance_km",
         lambda x, c: x["pair_known"] & (x["distance_m"] // 1000 > c["max_distance_km"]),
         {"max_distance_km": 100}, side="witness"),
    Rule("W14", R.BAD_RSSI, "signal/10 ≤ tx_power + gains − FSPL(f, d) (free-space ceiling, no margin)",
         lambda x, c: x["pair_known"] & (x["signal_dbm"] > x["max_rssi"]),
         {"speed_of_light_mps": 2.998e8}, side="witness"),
    Rule("W15", R.DUPLICATE, "the first report of a witness gateway for a beacon wins",
         lambda x, c: x["duplicate"], side="witness"),
    Rule("W16", R.STALE, "received at most stale_after_ms after the device timestamp", _stale,
         _FRESHNESS, side="witness"),
    Rule("W17", R.FUTURE_TIMESTAMP, "not received after the run's now (+skew)", _future, side="witness"),
), settings={"max_selected_witnesses": 14})


def all_reasons() -> list[str]:
    return sorted(set(BEACON_RULES.reasons()) | set(WITNESS_RULES.reasons()))
