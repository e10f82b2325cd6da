"""Quality-of-Data scores: packets → hourly scores per variable → daily score.

Follows WeatherXM's QoD code as `../shared/reference/sensor.md` describes it,
with one deliberate difference: silent slots and silent hours are simply
faulty (score 0), so every day scores instead of dividing by zero.

Only the day's hours are scored, but rolling checks upstream see every packet
given (WeatherXM feeds the 6 h before the day; callers should pass at least
that much context and name the days to score).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.sensor import (HOURLY_FLAGS, MODELS, SENSOR_DAILY, SENSOR_HOURLY, VARIABLE_COLUMNS,
                            VARIABLE_NAMES)
from transforms.rules import verdicts
from transforms.sensor import series
from transforms.sensor.rules import MODEL_KEYS, Reason
from transforms.sensor.source import lookup

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
# Which packet reason codes raise which hourly flag.
_FLAG_OF = {
    "out_of_bounds": "OBC", "precipitation_reset": "OBC", "precipitation_rate": "OBC",
    "spike": "SPIKE_INST", "unidentified_spike": "UNIDENTIFIED_SPIKE",
    "constant": "SHORT_CONST", "long_constant": "LONG_CONST", "frozen_sensor": "FROZEN_SENSOR",
}
_NOT_IN_SERIES = (Reason.DUPLICATE_READING, Reason.FUTURE_TIMESTAMP)
_HOURLY_NAMES = [f.name for f in SENSOR_HOURLY if f.name not in
                 ("run_id", "pipeline_version", "rules_version", "ingested_at")]


@dataclass
class Scored:
    """The packets that count for scoring, with their station's effective model."""
    table: pa.Table          # readings rows in (station_id, timestamp) order
    station: np.ndarray      # station code, ascending
    station_ids: list[str]   # code → id
    model: np.ndarray        # per row, 0/1
    ts: np.ndarray
    reg: np.ndarray          # per row registry row


def _np(col, fill, dtype=None):
    a = pc.fill_null(col, fill).to_numpy(zero_copy_only=False)
    return a.astype(dtype) if dtype is not None else a


def in_series_order(t: pa.Table) -> pa.Table:
    """Rows by (station, time), ties broken by provenance: the order every
    series rule and score reads, identical on every runner."""
    if not t.num_rows:
        return t
    return t.take(pc.sort_indices(t, [("station_id", "ascending"), ("timestamp", "ascending"),
                                      ("source_uri", "ascending"), ("source_record", "ascending")]))


def prepare(readings: pa.Table, registry: pa.Table) -> Scored:
    """Series packets of registered stations with a known model, sorted.

    Mirrors the series definition of the rule checks: the first packet per
    (station, timestamp) that is neither a duplicate nor in the future.
    """
    t = in_series_order(readings)
    drop = np.zeros(t.num_rows, dtype=bool)
    for code in _NOT_IN_SERIES:
        drop |= has_code(t.column("reasons"), code)
    ts = _np(t.column("timestamp"), 0, np.int64)
    sid = t.column("station_id")
    codes = _np(pc.dictionary_encode(sid).combine_chunks().indices, 0, np.int64) if t.num_rows else np.zeros(0, np.int64)
    # A repeated (station, timestamp) after a kept packet is not a new packet.
    keep_series = ~drop
    kept = np.nonzero(keep_series)[0]
    k_first = series.starts(codes[kept])
    k_ts = ts[kept]
    keep_series[kept[~k_first & (k_ts == series.previous(k_ts, k_first, -1))]] = False
    reg = lookup(sid, registry)
    reg_model = _model_code(registry.column("model"))
    row_model = _model_code(t.column("model"))
    model = np.where(reg >= 0, reg_model[np.clip(reg, 0, None)] if len(reg_model) else -1, -1)
    model = np.where((reg >= 0) & (model < 0), row_model, model)
    keep = keep_series & (reg >= 0) & (model >= 0)
    idx = np.nonzero(keep)[0]
    sub = t.take(pa.array(idx))
    ids = sub.column("station_id")
    if sub.num_rows:
        enc = pc.dictionary_encode(ids).combine_chunks()
        st = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        names = enc.dictionary.to_pylist()
    else:
        st, names = np.zeros(0, np.int64), []
    return Scored(sub, st, names, model[idx], ts[idx], reg[idx])


def has_code(lists, code: str) -> np.ndarray:
    """Rows whose list<string> holds `code`."""
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    out = np.zeros(len(lists), dtype=bool)
    flat = pc.list_flatten(lists)
    if len(flat):
        parent = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
        out[parent[_np(pc.equal(flat, code), False, bool)]] = True
    return out


def _model_code(col) -> np.ndarray:
    m = _np(col, "", None).astype(object) if len(col) else np.zeros(0, object)
    out = np.full(len(m), -1, dtype=np.int64)
    for k, name in enumerate(MODELS):
        out[m == name] = k
    return out


def day_number(d: int | str | _dt.date) -> int:
    """Days since the Unix epoch for a date given as int, 'YYYY-MM-DD' or date."""
    if isinstance(d, (int, np.integer)):
        return int(d)
    if isinstance(d, str):
        d = _dt.date.fromisoformat(d)
    return (d - _dt.date(1970, 1, 1)).days


def station_days(s: Scored, days: Iterable | None) -> tuple[np.ndarray, np.ndarray]:
    """(station code, day) pairs to score: days with packets, limited to `days` when given."""
    if not len(s.ts):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    day = np.floor_divide(s.ts, DAY_MS)
    first = series.starts(s.station)
    new = first | (day != series.previous(day, first, -1))   # rows are sorted by (station, ts)
    st, dy = s.station[new].astype(np.int64), day[new].astype(np.int64)
    if days is not None:
        keep = np.isin(dy, np.array(sorted({day_number(d) for d in days}), dtype=np.int64))
        st, dy = st[keep], dy[keep]
    return st, dy


def _per_model(c: Mapping[str, Any], name: str, model: np.ndarray) -> np.ndarray:
    vals = np.array([float(c[f"{k}_{name}"]) for k in MODEL_KEYS])
    return vals[model]


def _flag_matrix(t: pa.Table, v: str, row_hour: np.ndarray, n_hours: int) -> np.ndarray:
    """bool[n_hours, len(HOURLY_FLAGS)]: which packet flags of variable v occurred in each hour."""
    out = np.zeros((n_hours, len(HOURLY_FLAGS)), dtype=bool)
    lists = t.column(f"{v}_flags").combine_chunks()
    flat = pc.list_flatten(lists)
    if len(flat) == 0:
        return out
    parent = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    codes = flat.to_numpy(zero_copy_only=False).astype(object)
    hours = row_hour[parent]
    ok = hours >= 0
    for code, flag in _FLAG_OF.items():
        hit = ok & (codes == code)
        out[hours[hit], HOURLY_FLAGS.index(flag)] = True
    return out


def _lists(matrix: np.ndarray, names: list[str]) -> pa.ListArray:
    rows, cols = np.nonzero(matrix)
    values = pa.array(np.array(names, dtype=object)[cols] if len(cols) else [], pa.string())
    offsets = np.zeros(matrix.shape[0] + 1, dtype=np.int32)
    np.cumsum(matrix.sum(axis=1), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def hourly(readings_flagged: pa.Table, registry: pa.Table, consts,
           days: Iterable | None = None, scored: Scored | None = None) -> pa.Table:
    """Flagged packets → one SENSOR_HOURLY row (without run columns) per station-hour of each scored day."""
    c = consts.values if hasattr(consts, "values") else consts
    s = scored if scored is not None else prepare(readings_flagged, registry)
    st_code, st_day = station_days(s, days)
    n_days = len(st_code)
    n_h = n_days * 24
    g_station = np.repeat(st_code, 24)
    g_hour = (np.repeat(st_day, 24) * 24 + np.tile(np.arange(24), n_days)).astype(np.int64)
    # Effective model per station (constant within a station after `prepare`).
    st_model = np.zeros(len(s.station_ids), dtype=np.int64)
    st_model[s.station] = s.model
    g_model = st_model[g_station] if n_h else np.zeros(0, np.int64)
    # Row → grid hour (−1 for context rows outside the scored days).
    row_hour_abs = np.floor_divide(s.ts, HOUR_MS)
    row_hour = _locate(g_station, g_hour, s.station, row_hour_abs)
    interval_s = _per_model(c, "packet_interval_s", g_model)
    expected = np.rint(3600.0 / interval_s).astype(np.int64) if n_h else np.zeros(0, np.int64)
    in_grid = row_hour >= 0
    packets = np.bincount(row_hour[in_grid], minlength=n_h).astype(np.int64)
    min_packets = _per_model(c, "min_packets_per_hour", g_model)
    cols: dict[str, Any] = {
        "station_id": pa.array(np.array(s.station_ids, dtype=object)[g_station] if n_h else [], pa.string()),
        "model": pa.array(np.array(MODELS, dtype=object)[g_model] if n_h else [], pa.string()),
        "hour_start": pa.array(g_hour * HOUR_MS, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        "packets": pa.array(packets, pa.int32()),
        "expected_packets": pa.array(expected, pa.int32()),
    }
    ws1000 = g_model == 0
    for v in VARIABLE_NAMES:
        val = _np(s.table.column(VARIABLE_COLUMNS[v]), np.nan, np.float64)
        has = ~np.isnan(val)
        good = has & _np(pc.equal(pc.list_value_length(s.table.column(f"{v}_flags")), 0), False, bool)
        # WS2000: packet slots. s = (expected − faulty)/expected, faulty = bad packets + missing slots.
        present_v = np.bincount(row_hour[in_grid & has], minlength=n_h)
        valid_v = np.bincount(row_hour[in_grid & good], minlength=n_h)
        faulty = (packets - valid_v) + np.maximum(expected - packets, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            s2 = np.clip((expected - faulty) / np.maximum(expected, 1), 0.0, 1.0)
            comp2 = np.minimum(present_v, expected) / np.maximum(expected, 1)
        score2 = np.where(s2 > float(c["ws2000_hour_full_above"]), 1.0, s2)
        # WS1000: minute (wind: 2-minute) slots.
        s1, comp1 = _ws1000_hours(s, v, val, has, good, g_station, g_hour, row_hour, c, n_h)
        score = np.where(ws1000, s1, score2)
        valid_pct = np.where(ws1000, s1, s2) * 100.0
        completeness = np.where(ws1000, comp1, comp2)
        flags = _flag_matrix(s.table, v, row_hour, n_h)
        no_data = (packets < min_packets) | (completeness < float(c[f"{v}_hour_availability"]))
        flags[:, HOURLY_FLAGS.index("NO_DATA")] = no_data
        cols[f"{v}_completeness_pct"] = pa.array(completeness * 100.0, pa.float64())
        cols[f"{v}_valid_pct"] = pa.array(valid_pct, pa.float64())
        cols[f"{v}_score"] = pa.array(score, pa.float64())
        cols[f"{v}_flags"] = _lists(flags, list(HOURLY_FLAGS))
    return pa.table([cols[n] for n in _HOURLY_NAMES],
                    schema=pa.schema([SENSOR_HOURLY.field(n) for n in _HOURLY_NAMES]))


def _locate(g_station, g_key, station, key) -> np.ndarray:
    """Index of (station, key) in the sorted grid, −1 when absent."""
    if len(g_station) == 0 or len(station) == 0:
        return np.full(len(station), -1, dtype=np.int64)
    k0 = min(int(g_key.min()), int(key.min()))
    span = max(int(g_key.max()), int(key.max())) - k0 + 1
    gk = g_station.astype(np.int64) * span + (g_key - k0)
    rk = station.astype(np.int64) * span + (key - k0)
    pos = np.searchsorted(gk, rk)
    pos_c = np.clip(pos, 0, len(gk) - 1)
    return np.where(gk[pos_c] == rk, pos_c, -1).astype(np.int64)


def _ws1000_hours(s: Scored, v, val, has, good, g_station, g_hour, row_hour, c, n_h):
    """(score, completeness) per grid hour from WS1000 minute slots.

    A slot is valid when ≥ 25 % of its packets are valid (the denominator is
    never below the packets the slot should hold, so a lone packet in an
    otherwise silent slot is judged fairly, and an empty slot is simply
    faulty) and its mean does not jump from the previous slot's by more than
    the variable's threshold. Slots are computed from all packets, context
    included, so the first slot of a day compares with the last of the day before.
    """
    score = np.zeros(n_h)
    comp = np.zeros(n_h)
    ws = s.model == 0
    if not ws.any() or n_h == 0:
        return score, comp
    slot_min = int(c["ws1000_wind_slot_minutes"] if v.startswith("wind") else c["ws1000_slot_minutes"])
    slot_ms = slot_min * 60_000
    per_hour = HOUR_MS // slot_ms
    expected = slot_ms / 1000.0 / float(c["ws1000_packet_interval_s"])
    rows = np.nonzero(ws)[0]
    slot_abs = np.floor_divide(s.ts[rows], slot_ms)
    st = s.station[rows]
    first_row = series.starts(st)
    new = first_row | (slot_abs != series.previous(slot_abs, first_row, -1))  # sorted by (station, ts)
    inv = np.cumsum(new) - 1
    uniq = np.stack([st[new], slot_abs[new]], axis=1)
    m = len(uniq)
    present = np.bincount(inv, minlength=m)
    nvalid = np.bincount(inv, weights=good[rows], minlength=m)
    nhas = np.bincount(inv, weights=has[rows], minlength=m)
    total = np.bincount(inv, weights=np.where(good[rows], val[rows], 0.0), minlength=m)
    ok = nvalid / np.maximum(present, expected) >= float(c["ws1000_slot_min_valid_share"])
    mean = np.where(ok & (nvalid > 0), total / np.maximum(nvalid, 1), np.nan)
    jump_name = f"ws1000_{v}_slot_jump"
    if jump_name in c:
        first = series.starts(uniq[:, 0])
        adjacent = ~first & (uniq[:, 1] - series.previous(uniq[:, 1], first, 0) == 1)
        prev_mean = series.previous(mean, first, np.nan)
        ok &= ~(adjacent & (np.abs(mean - prev_mean) > float(c[jump_name])))
    slot_hour = np.floor_divide(uniq[:, 1] * slot_ms, HOUR_MS)
    where = _locate(g_station, g_hour, uniq[:, 0], slot_hour)
    inside = where >= 0
    valid_slots = np.bincount(where[inside & ok], minlength=n_h)
    filled_slots = np.bincount(where[inside & (nhas > 0)], minlength=n_h)
    return valid_slots / per_hour, filled_slots / per_hour


def daily(hourly_table: pa.Table, pol_table: pa.Table, consts) -> pa.Table:
    """SENSOR_HOURLY rows (24 per station-day, as `hourly` makes them) + PoL → SENSOR_DAILY rows
    (without run columns)."""
    c = consts.values if hasattr(consts, "values") else consts
    h = hourly_table
    n = h.num_rows // 24
    if h.num_rows % 24:
        raise ValueError("hourly table must hold 24 rows per station-day")
    hour_ms = h.column("hour_start").cast(pa.int64()).to_numpy(zero_copy_only=False) if n else np.zeros(0, np.int64)
    first = np.arange(n) * 24
    day = np.floor_divide(hour_ms[first], DAY_MS) if n else np.zeros(0, np.int64)
    cols: dict[str, Any] = {
        "station_id": h.column("station_id").take(pa.array(first)),
        "model": h.column("model").take(pa.array(first)),
        "day": pa.array(day.astype(np.int32), pa.int32()).cast(pa.date32()),
    }
    var_scores = []
    flag_names, flag_hits = [], []
    for v in VARIABLE_NAMES:
        sc = h.column(f"{v}_score").to_numpy(zero_copy_only=False).reshape(n, 24).mean(axis=1)
        var_scores.append(sc)
        cols[f"{v}_score"] = pa.array(sc, pa.float64())
        lists = h.column(f"{v}_flags").combine_chunks()
        flat = pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype(object)
        parent = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False) // 24
        for f in HOURLY_FLAGS:
            hit = np.zeros(n, dtype=bool)
            hit[parent[flat == f]] = True
            flag_names.append(f"{v}:{f}")
            flag_hits.append(hit)
    qod = np.mean(np.stack(var_scores, axis=1), axis=1) if n else np.zeros(0)
    cols["qod_score"] = pa.array(qod, pa.float64())
    packets = h.column("packets").to_numpy(zero_copy_only=False).reshape(n, 24)
    cols["hours_with_data"] = pa.array((packets > 0).sum(axis=1), pa.int32())
    # PoL, joined on (station_id, day).
    pol = _join_pol(cols["station_id"], day, pol_table)
    cols.update(pol)
    order = np.argsort(np.array(flag_names, dtype=object))
    fmat = np.stack(flag_hits, axis=1)[:, order] if n else np.zeros((0, len(flag_names)), bool)
    cols["flags"] = _lists(fmat, [flag_names[i] for i in order])
    low = qod < float(c["qod_min"])
    no_pol = ~(pol["pol_score"].to_numpy(zero_copy_only=False) > 0)
    reasons = _lists(np.stack([low, no_pol], axis=1), [Reason.QOD_BELOW_MIN, Reason.POL_FAILED])
    cols["verdict"] = verdicts(reasons)
    cols["reasons"] = reasons
    names = [f.name for f in SENSOR_DAILY if f.name in cols]
    return pa.table([cols[k] for k in names], schema=pa.schema([SENSOR_DAILY.field(k) for k in names]))


def _join_pol(station_ids: pa.Array, day: np.ndarray, pol: pa.Table) -> dict[str, pa.Array]:
    """PoL columns for each (station_id, day); days without a PoL row score 0 with no flags."""
    n = len(day)
    take = np.full(n, -1, dtype=np.int64)
    if pol.num_rows and n:
        left = pa.table({"station_id": station_ids, "_day": pa.array(day, pa.int64()),
                         "_i": pa.array(np.arange(n, dtype=np.int64))})
        right = pa.table({"station_id": pol.column("station_id"), "_day": pol.column("day"),
                          "_j": pa.array(np.arange(pol.num_rows, dtype=np.int64))})
        j = left.join(right, ["station_id", "_day"], join_type="inner")
        take[j.column("_i").to_numpy()] = j.column("_j").to_numpy()
    missing = take < 0
    idx = pa.array(take, mask=missing)

    def col(name, typ):
        return pol.column(name).combine_chunks().take(idx).cast(typ) if pol.num_rows else pa.nulls(n, typ)

    flags = col("pol_flags", pa.list_(pa.string()))
    flags = pc.if_else(pc.is_null(flags), pa.scalar([], pa.list_(pa.string())), flags)
    return {
        "claimed_cell": pc.fill_null(col("claimed_cell", pa.uint64()), 0),
        "gnss_fixes": pc.fill_null(col("gnss_fixes", pa.int32()), 0),
        "gnss_cell": col("gnss_cell", pa.uint64()),
        "pol_score": pc.fill_null(col("pol_score", pa.float64()), 0.0),
        "pol_flags": flags,
    }
