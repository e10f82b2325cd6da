"""The weather-station packet rule table (WeatherXM QoD checks, re-expressed).

Reason codes are shared across variables (`out_of_bounds`, `spike`, …) and
each variable rule names its variable in `Rule.side`; `verify.py` turns that
into the `<variable>_flags` columns, so buyers can filter per variable while
`reasons` stays a short, stable vocabulary. Record-level rules have side
"record".

Checks read a context (`Ctx`) of numpy arrays for rows sorted by
(station_id, timestamp). Order-dependent checks (spikes, stuck windows) run
only over the station's *series*: packets that are neither repeats of an
earlier packet at the same time nor in the future. Checks that share work
(the two spike outcomes, the three stuck-window outcomes) memoise it in the
context.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from schemas.sensor import MODELS, VARIABLE_NAMES
from transforms.rules import Rule, RuleSet
from transforms.sensor import series

RULES_VERSION = "sensor-1.0.0"


class Reason:
    """All reason codes of this source (packets; then daily-only codes)."""
    STATION_NOT_FOUND = "station_not_found"
    MODEL_MISMATCH = "model_mismatch"
    DUPLICATE_READING = "duplicate_reading"
    TIMESTAMP_ORDER = "timestamp_order"
    FUTURE_TIMESTAMP = "future_timestamp"
    STALE = "stale"
    OUT_OF_BOUNDS = "out_of_bounds"
    SPIKE = "spike"
    UNIDENTIFIED_SPIKE = "unidentified_spike"
    CONSTANT = "constant"
    LONG_CONSTANT = "long_constant"
    FROZEN_SENSOR = "frozen_sensor"
    PRECIPITATION_RESET = "precipitation_reset"
    PRECIPITATION_RATE = "precipitation_rate"
    # Daily rows (sensor_daily): the buyers' filter.
    QOD_BELOW_MIN = "qod_below_min"
    POL_FAILED = "pol_failed"


R = Reason
RECORD = "record"
MODEL_KEYS = tuple(m.lower() for m in MODELS)  # constant-name prefixes: ws1000_, ws2000_

# Variables each check applies to (reference: wind direction and precipitation
# have no spike test; precipitation is a counter, so no bounds or stuck test).
BOUNDED = ("temperature", "humidity", "pressure", "wind_speed", "wind_direction", "illuminance")
SPIKED = ("temperature", "humidity", "pressure", "wind_speed", "illuminance")
STUCK = ("temperature", "humidity", "pressure", "wind_speed", "wind_direction", "illuminance")
LONG_STUCK = ("temperature", "pressure", "wind_speed", "wind_direction")
WIND = ("wind_speed", "wind_direction")

_BOUNDS = {  # (WS1000 min, max), (WS2000 min, max)
    "temperature": ((-40, 60), (-40, 80)),
    "humidity": ((10, 99), (1, 99)),
    "pressure": ((300, 1100), (540, 1100)),
    "wind_speed": ((0, 50), (0, 50)),
    "wind_direction": ((0, 359), (0, 359)),
    "illuminance": ((0, 400_000), (0, 200_000)),
}
_SPIKE = {  # per-packet jump thresholds, WS1000 / WS2000
    "humidity": (5, 30), "temperature": (2, 9), "wind_speed": (20, 15),
    "pressure": (0.8, 2.4), "illuminance": (97_600, 146_400),
}
_MEDIAN_AVAILABILITY = {"temperature": 0.67, "humidity": 0.67, "pressure": 0.67,
                        "illuminance": 0.67, "wind_speed": 0.75}
_CONSTANT_MIN = {"humidity": 360, "temperature": 240, "wind_direction": 360, "wind_speed": 360,
                 "pressure": 120, "illuminance": 120}

# Model constants used by several rules and by the QoD scorer.
MODEL_SETTINGS = {
    "ws1000_packet_interval_s": 16,
    "ws2000_packet_interval_s": 180,
    # Rolling-median window that decides which member of a jump pair is the spike.
    "ws1000_median_window_min": 10,
    "ws2000_median_window_min": 60,
}


def _bounds_consts(v: str) -> dict[str, float]:
    out = {}
    for k, (lo, hi) in zip(MODEL_KEYS, _BOUNDS[v]):
        out[f"{k}_{v}_min"] = lo
        out[f"{k}_{v}_max"] = hi
    return out


def _spike_consts(v: str) -> dict[str, float]:
    out = {f"{k}_{v}_spike": t for k, t in zip(MODEL_KEYS, _SPIKE[v])}
    out[f"{v}_median_availability"] = _MEDIAN_AVAILABILITY[v]
    out.update(MODEL_SETTINGS)
    return out


def _stuck_consts(v: str) -> dict[str, float]:
    out: dict[str, float] = {f"{v}_constant_window_min": _CONSTANT_MIN[v]}
    if v in ("temperature", "humidity"):
        out["constant_humid_rh"] = 95
    if v in WIND:
        out["wind_constant_humid_rh"] = 85
        out["frozen_below_c"] = 0
    return out


# ------------------------------------------------------------------ context
@dataclass
class Ctx:
    """Per-batch arrays the checks read; rows sorted by (station, timestamp)."""
    station: np.ndarray            # int station code (groups)
    ts: np.ndarray                 # int64 ms
    model: np.ndarray              # 0 WS1000, 1 WS2000, -1 unknown (effective model)
    station_found: np.ndarray
    model_mismatch: np.ndarray
    duplicate: np.ndarray
    out_of_order: np.ndarray
    in_series: np.ndarray
    values: Mapping[str, np.ndarray]  # variable → float64, NaN where null
    now_ms: int
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.ts)


def per_model(c: Mapping[str, Any], name: str, model: np.ndarray) -> np.ndarray:
    """Per-row value of the constant `ws1000_<name>` / `ws2000_<name>`; NaN for unknown models."""
    a = float(c[f"{MODEL_KEYS[0]}_{name}"])
    b = float(c[f"{MODEL_KEYS[1]}_{name}"])
    return np.where(model == 0, a, np.where(model == 1, b, np.nan))


class _Series:
    """The rows of the batch that form stations' time series, with neighbours."""

    def __init__(self, x: Ctx, c: Mapping[str, Any]):
        self.idx = np.nonzero(x.in_series & (x.model >= 0))[0]
        self.grp = x.station[self.idx]
        self.ts = x.ts[self.idx]
        self.model = x.model[self.idx]
        self.first = series.starts(self.grp)
        self.step_ms = per_model(c, "packet_interval_s", self.model) * 1000.0
        self.dt = self.ts - series.previous(self.ts, self.first, 0)

    def scatter(self, n: int, sub: np.ndarray) -> np.ndarray:
        out = np.zeros(n, dtype=bool)
        out[self.idx] = sub
        return out


def _series(x: Ctx, c) -> _Series:
    if "series" not in x.cache:
        x.cache["series"] = _Series(x, c)
    return x.cache["series"]


# ------------------------------------------------------------------ checks
def _oob(x: Ctx, c, v: str) -> np.ndarray:
    key = f"oob:{v}"
    if key not in x.cache:
        val = x.values[v]
        lo, hi = per_model(c, f"{v}_min", x.model), per_model(c, f"{v}_max", x.model)
        x.cache[key] = x.in_series & ((val < lo) | (val > hi))  # NaN compares False: null passes
    return x.cache[key]


def _checked_values(x: Ctx, c, v: str) -> np.ndarray:
    """Values the order checks see: out-of-bounds ones are already faulty, so they are
    gaps rather than the far end of a spike or part of a stuck run."""
    if v not in BOUNDED:
        return x.values[v]
    return np.where(_oob(x, c, v), np.nan, x.values[v])


def _out_of_bounds(v: str):
    return lambda x, c: _oob(x, c, v)


def _spikes(x: Ctx, c, v: str) -> tuple[np.ndarray, np.ndarray]:
    """(spike, unidentified_spike) for variable v.

    A jump is |x_t − x_t−1| > threshold between neighbouring packets (at most
    1.5 packet intervals apart). Of the pair, the member farther from its
    trailing rolling median is the spike, and later packets repeating a
    spike's exact value are spikes too. Where a member has no median (the
    window holds too few values), that member is an unidentified spike.
    """
    key = f"spike:{v}"
    if key in x.cache:
        return x.cache[key]
    s = _series(x, c)
    val = _checked_values(x, c, v)[s.idx]
    m = len(val)
    thr = per_model(c, f"{v}_spike", s.model)
    prev = series.previous(val, s.first, np.nan)
    near = ~s.first & (s.dt <= 1.5 * s.step_ms)
    jump = near & (np.abs(val - prev) > thr)           # NaN → False
    couple = jump.copy()
    couple[:-1] |= jump[1:]                             # the earlier member of each pair
    cand = np.nonzero(couple)[0]
    med = np.full(m, np.nan)
    if len(cand):
        width = (per_model(c, "median_window_min", s.model) * 60_000).astype(np.int64)
        lo = series.window_start(s.grp, s.ts, width)[cand]
        rows, owner = series.ragged(lo, cand + 1)
        cm, count = series.group_median(owner, val[rows], len(cand))
        possible = width[cand] / s.step_ms[cand]
        ok = count >= float(c[f"{v}_median_availability"]) * possible
        med[cand] = np.where(ok, cm, np.nan)
    dist = np.abs(val - med)
    dprev = series.previous(dist, s.first, np.nan)
    spike = np.zeros(m, dtype=bool)
    spike |= jump & (dist > dprev)
    spike[:-1] |= (jump & (dprev > dist))[1:]
    # Repeats of a spike value are the same fault persisting.
    same = near & (val == prev)
    spike = series.carry_forward_in_run(spike, series.run_ids(~same))
    unident = couple & np.isnan(med)
    out = (s.scatter(x.n, spike), s.scatter(x.n, unident))
    x.cache[key] = out
    return out


def _stuck(x: Ctx, c, v: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(constant, long_constant, frozen_sensor) for variable v.

    A stuck stretch is a run of identical consecutive values (a single
    missing packet does not break it, two do) that fills a window of the
    variable's length. Temperature/humidity are exempt while the run's median
    humidity is ≥ 95 % (saturated air is legitimately flat); wind while it is
    ≥ 85 %; constant wind at median temperature below 0 °C is a frozen sensor.
    Illuminance counts only when not 0 (night).
    """
    key = f"stuck:{v}"
    if key in x.cache:
        return x.cache[key]
    s = _series(x, c)
    full = _checked_values(x, c, v)[s.idx]
    have = ~np.isnan(full)
    sub = np.nonzero(have)[0]
    val, ts, grp, step = full[sub], s.ts[sub], s.grp[sub], s.step_ms[sub]
    first = series.starts(grp)
    dt = ts - series.previous(ts, first, 0)
    brk = first | (val != series.previous(val, first, np.nan)) | (dt > 2.5 * step)
    run = series.run_ids(brk)
    nrun = int(run[-1]) + 1 if len(run) else 0
    t0 = np.full(nrun, np.iinfo(np.int64).max)
    t1 = np.full(nrun, np.iinfo(np.int64).min)
    np.minimum.at(t0, run, ts)
    np.maximum.at(t1, run, ts)
    run_step = np.zeros(nrun)
    np.maximum.at(run_step, run, step)
    filled = (t1 - t0) + run_step                       # ms the run covers, counting its last packet
    h_med, _ = series.group_median(run, x.values["humidity"][s.idx][sub], nrun)
    t_med, _ = series.group_median(run, x.values["temperature"][s.idx][sub], nrun)
    win = float(c[f"{v}_constant_window_min"]) * 60_000
    is_const = filled >= win
    frozen = np.zeros(nrun, dtype=bool)
    if v in ("temperature", "humidity"):
        is_const &= ~(h_med >= float(c["constant_humid_rh"]))
    elif v in WIND:
        frozen = is_const & (t_med < float(c["frozen_below_c"]))
        is_const &= ~frozen & ~(h_med >= float(c["wind_constant_humid_rh"]))
    elif v == "illuminance":
        run_val = np.zeros(nrun)
        run_val[run] = val
        is_const &= run_val != 0
    long_ = np.zeros(nrun, dtype=bool)
    if v in LONG_STUCK:
        long_ = filled >= float(c[f"{v}_long_constant_window_min"]) * 60_000
        if v in WIND:
            long_ &= ~frozen

    def back(per_run: np.ndarray) -> np.ndarray:
        mid = np.zeros(len(full), dtype=bool)
        mid[sub] = per_run[run] if nrun else False
        return s.scatter(x.n, mid)

    out = (back(is_const), back(long_), back(frozen))
    x.cache[key] = out
    return out


def _precip(x: Ctx, c) -> tuple[np.ndarray, np.ndarray]:
    """(reset, rate) of the precipitation counter against the previous packet holding a value."""
    if "precip" in x.cache:
        return x.cache["precip"]
    s = _series(x, c)
    full = x.values["precipitation"][s.idx]
    sub = np.nonzero(~np.isnan(full))[0]
    val, ts, grp = full[sub], s.ts[sub], s.grp[sub]
    first = series.starts(grp)
    step = val - series.previous(val, first, np.nan)
    dt_s = (ts - series.previous(ts, first, 0)) / 1000.0
    reset = step < 0
    rate = step > float(c["precipitation_step_mm_per_s"]) * dt_s

    def back(a):
        mid = np.zeros(len(full), dtype=bool)
        mid[sub] = a
        return s.scatter(x.n, mid)

    out = (back(reset), back(rate))
    x.cache["precip"] = out
    return out


# ------------------------------------------------------------------ table
def _record_rules() -> list[Rule]:
    return [
        Rule("R01", R.STATION_NOT_FOUND, "the station is in the station registry",
             lambda x, c: ~x.station_found, side=RECORD),
        Rule("R02", R.MODEL_MISMATCH,
             "the packet's model, when given, is WS1000/WS2000 and equals the registry's",
             lambda x, c: x.model_mismatch, side=RECORD),
        Rule("R03", R.DUPLICATE_READING,
             "no earlier packet of the station has the same timestamp and identical values",
             lambda x, c: x.duplicate, side=RECORD),
        Rule("R04", R.TIMESTAMP_ORDER,
             "Δt > 0: later than every earlier packet of the station in the same file, and no "
             "other packet of the station has the same timestamp with different values",
             lambda x, c: x.out_of_order, side=RECORD),
        Rule("R05", R.FUTURE_TIMESTAMP, "timestamp ≤ the run's now + future_skew_ms",
             lambda x, c: x.ts > x.now_ms + int(c["future_skew_ms"]),
             {"future_skew_ms": 60_000}, side=RECORD),
        Rule("R06", R.STALE, "timestamp ≥ the run's now − stale_after_ms",
             lambda x, c: x.ts < x.now_ms - int(c["stale_after_ms"]),
             {"stale_after_ms": 30 * 86_400_000}, side=RECORD),
    ]


def _variable_rules() -> list[Rule]:
    rules: list[Rule] = []
    for v in VARIABLE_NAMES:
        if v in BOUNDED:
            rules.append(Rule(f"OOB.{v}", R.OUT_OF_BOUNDS, f"{v} within the model's physical range",
                              _out_of_bounds(v), _bounds_consts(v), side=v))
        if v in SPIKED:
            rules.append(Rule(f"SPK.{v}", R.SPIKE,
                              f"{v}: no jump above the model threshold between neighbouring packets "
                              "(the member farther from the rolling median is faulty)",
                              lambda x, c, v=v: _spikes(x, c, v)[0], _spike_consts(v), side=v))
            rules.append(Rule(f"USP.{v}", R.UNIDENTIFIED_SPIKE,
                              f"{v}: a jump member has a rolling median (enough packets in the window)",
                              lambda x, c, v=v: _spikes(x, c, v)[1], _spike_consts(v), side=v))
        if v in STUCK:
            rules.append(Rule(f"CON.{v}", R.CONSTANT, f"{v} not stuck for the variable's window",
                              lambda x, c, v=v: _stuck(x, c, v)[0], _stuck_consts(v), side=v))
        if v in LONG_STUCK:
            rules.append(Rule(f"LCO.{v}", R.LONG_CONSTANT, f"{v} not stuck for a whole day",
                              lambda x, c, v=v: _stuck(x, c, v)[1],
                              {f"{v}_long_constant_window_min": 1440}, side=v))
        if v in WIND:
            rules.append(Rule(f"FRZ.{v}", R.FROZEN_SENSOR, f"{v} not stuck below freezing",
                              lambda x, c, v=v: _stuck(x, c, v)[2], _stuck_consts(v), side=v))
    step = {"precipitation_step_mm_per_s": 0.254}
    rules.append(Rule("PRR.precipitation", R.PRECIPITATION_RESET,
                      "the precipitation counter never decreases",
                      lambda x, c: _precip(x, c)[0], step, side="precipitation"))
    rules.append(Rule("PRT.precipitation", R.PRECIPITATION_RATE,
                      "counter increase ≤ 0.254 mm per second since the previous packet",
                      lambda x, c: _precip(x, c)[1], step, side="precipitation"))
    return rules


# Constants the scorers use (not rejection rules); overridable like the rest.
QOD_SETTINGS = {
    "ws1000_min_packets_per_hour": 60,
    "ws2000_min_packets_per_hour": 18,
    "temperature_hour_availability": 0.67, "humidity_hour_availability": 0.67,
    "pressure_hour_availability": 0.67, "illuminance_hour_availability": 0.67,
    "wind_speed_hour_availability": 0.75, "wind_direction_hour_availability": 0.75,
    "precipitation_hour_availability": 0.85,
    "ws2000_hour_full_above": 0.9,           # s > 0.9 → the hour scores 1
    "ws1000_slot_min_valid_share": 0.25,     # minute slot faulty under 25 % valid packets
    "ws1000_slot_minutes": 1, "ws1000_wind_slot_minutes": 2,
    "ws1000_humidity_slot_jump": 10, "ws1000_temperature_slot_jump": 3,
    "ws1000_wind_speed_slot_jump": 10, "ws1000_pressure_slot_jump": 0.5,
    "ws1000_illuminance_slot_jump": 97_600,
    "qod_min": 0.8,                          # daily verdict: buyers keep QoD ≥ 0.8 and PoL > 0
}
POL_SETTINGS = {
    "gnss_max_accuracy_m": 50.0,             # fixes less accurate than this are ignored
    "gnss_round_decimals": 6,                # ~0.1 m; dedups points before the H3 call
    "pol_k_ring": 1,                         # tolerance around the claimed res-7 cell
    "pol_outside_share": 0.5,                # more than this share of fixes outside → 0
    "relocation_min_share": 0.8,             # a day's fixes this concentrated in a new cell = move
    "relocation_penalty_days": 7,
}

SENSOR_RULES = RuleSet("sensor", RULES_VERSION, tuple(_record_rules() + _variable_rules()),
                       settings={**MODEL_SETTINGS, **QOD_SETTINGS, **POL_SETTINGS})


def all_reasons() -> list[str]:
    return [v for k, v in vars(Reason).items() if not k.startswith("_")]
