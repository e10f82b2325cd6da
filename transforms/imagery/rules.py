"""The imagery rule tables, re-expressed from the Hivemapper / Mapillary
reference (shared/reference/imagery.md).

Two tables because they judge different things: `FRAME_RULES` judge a frame
on its own (plus identical-image detection), `SEQUENCE_RULES` judge how a
frame moves relative to its device's previous frame that *passed* the frame
rules — so one bad fix condemns itself, not the clean frames around it.
Checks read a context dict of numpy arrays prepared by `verify.py`
(NaN = not reported = pass) and return True where the frame fails.
"""
from __future__ import annotations

import numpy as np

from transforms.rules import Constants, Rule, RuleSet

RULES_VERSION = "imagery-1.0.0"

DAY_MS = 86_400_000


class Reason:
    """All reason codes this source can emit (an enum of strings)."""
    COORDINATE_RANGE = "coordinate_range"
    NULL_ISLAND = "null_island"
    BAD_FIX = "bad_fix"
    FEW_SATELLITES = "few_satellites"
    HIGH_HDOP = "high_hdop"
    HIGH_GDOP = "high_gdop"
    HIGH_EPH = "high_eph"
    FUTURE_TIMESTAMP = "future_timestamp"
    TOO_OLD = "too_old"
    IMAGE_TOO_SMALL = "image_too_small"
    IMAGE_TOO_LARGE = "image_too_large"
    DUPLICATE_FRAME = "duplicate_frame"
    NON_INCREASING_TIME = "non_increasing_time"
    TOO_FAST = "too_fast"
    TELEPORT = "teleport"
    ZIGZAG = "zigzag"
    STATIONARY_SEQUENCE = "stationary_sequence"


R = Reason
ALL_REASONS = tuple(v for k, v in vars(Reason).items() if k.isupper())


def _future(x, c):
    # Capture after the run's now, or after the ingestor received it: the
    # device clock is ahead, so its place in the sequence can't be trusted.
    skew = c["future_skew_ms"]
    return (x["captured"] > x["now_ms"] + skew) | \
        (x["has_received"] & (x["captured"] > x["received"] + skew))


FRAME_RULES = RuleSet("imagery_frame", RULES_VERSION, (
    Rule("F01", R.COORDINATE_RANGE, "lat in [−90, 90], lon in [−180, 180], both finite",
         lambda x, c: ~(np.abs(x["lat"]) <= 90) | ~(np.abs(x["lon"]) <= 180)),
    Rule("F02", R.NULL_ISLAND, "not at (0, 0): the position a receiver reports without a fix",
         lambda x, c: (np.abs(x["lat"]) <= c["null_island_deg"]) & (np.abs(x["lon"]) <= c["null_island_deg"]),
         {"null_island_deg": 1e-6}),
    Rule("F03", R.BAD_FIX, "GNSS fix is 3D (when reported)", lambda x, c: x["fix_not_3d"]),
    Rule("F04", R.FEW_SATELLITES, "at least min_satellites in the fix (when reported)",
         lambda x, c: x["satellites"] < c["min_satellites"], {"min_satellites": 4}),
    Rule("F05", R.HIGH_HDOP, "HDOP ≤ max_hdop (when reported)",
         lambda x, c: x["hdop"] > c["max_hdop"], {"max_hdop": 4.0}),
    Rule("F06", R.HIGH_GDOP, "GDOP ≤ max_gdop (when reported)",
         lambda x, c: x["gdop"] > c["max_gdop"], {"max_gdop": 6.0}),
    Rule("F07", R.HIGH_EPH, "horizontal error estimate ≤ max_eph_m (when reported)",
         lambda x, c: x["eph"] > c["max_eph_m"], {"max_eph_m": 10.0}),
    Rule("F08", R.FUTURE_TIMESTAMP, "captured no later than the run's now and the receipt time (+skew)",
         _future, {"future_skew_ms": 60_000}),
    Rule("F09", R.TOO_OLD, "captured at most max_age_ms before the run's now",
         lambda x, c: x["now_ms"] - x["captured"] > c["max_age_ms"], {"max_age_ms": 10 * DAY_MS}),
    Rule("F10", R.IMAGE_TOO_SMALL, "image larger than min_image_bytes (when reported)",
         lambda x, c: x["bytes"] <= c["min_image_bytes"], {"min_image_bytes": 25 * 1024}),
    Rule("F11", R.IMAGE_TOO_LARGE, "image smaller than max_image_bytes (when reported)",
         lambda x, c: x["bytes"] >= c["max_image_bytes"], {"max_image_bytes": 2 * 1024 * 1024}),
    Rule("F12", R.DUPLICATE_FRAME,
         "image hash not seen on an earlier frame; not within duplicate_distance_m and "
         "duplicate_heading_deg of the device's previous frame passing F01–F11",
         lambda x, c: x["duplicate"], {"duplicate_distance_m": 0.1, "duplicate_heading_deg": 5.0}),
), settings={"coverage_res": 8})

SEQUENCE_RULES = RuleSet("imagery_sequence", RULES_VERSION, (
    Rule("S01", R.NON_INCREASING_TIME, "captured strictly after the previous passing frame (Δt > 0)",
         lambda x, c: x["has_prev"] & (x["dt_ms"] <= 0)),
    Rule("S02", R.TOO_FAST, "implied speed (distance / Δt) from the previous passing frame ≤ max_speed_mps; "
         "the frame after a too-fast jump is forgiven when it is plausible from the frame before the jump",
         lambda x, c: x["too_fast"], {"max_speed_mps": 40.0}),
    Rule("S03", R.TELEPORT, "jump ≤ teleport_factor × the device's own expected step: the largest of "
         "its frame spacing (registry, else frame_spacing_m), the median and the last of its recent "
         "teleport_window steps, and recent median speed × Δt; judged once teleport_min_history steps "
         "are known (or the registry gives a distance-triggered spacing)",
         lambda x, c: x["teleport"], {"teleport_factor": 2.0, "frame_spacing_m": 8.0,
                                      "teleport_window": 5, "teleport_min_history": 2}),
    Rule("S04", R.ZIGZAG, "no out-and-back spike: within a zigzag_window of frames centred on the frame, "
         "legs out and back both > zigzag_jump_m while the net displacement is ≤ (1 − zigzag_ratio) × "
         "(out + back)",
         lambda x, c: x["zigzag"], {"zigzag_window": 5, "zigzag_ratio": 0.8, "zigzag_jump_m": 30.0}),
    Rule("S05", R.STATIONARY_SEQUENCE, "a sequence of ≥ 2 frames does not lie entirely within "
         "stationary_radius_m (bounding-box diagonal)",
         lambda x, c: x["stationary"], {"stationary_radius_m": 10.0}),
), settings={"split_distance_m": 100.0, "split_gap_ms": 60_000})


def rules_version(frame: Constants, sequence: Constants) -> str:
    """One `rules_version` for rows judged by both tables."""
    if frame.version == sequence.version:
        return frame.version
    return f"frame={frame.version};sequence={sequence.version}"


def all_reasons() -> list[str]:
    return list(ALL_REASONS)
