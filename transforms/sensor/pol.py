"""Proof of Location per station-day, from the GNSS fixes inside the packets.

A station-day D is located when the accurate fixes of day D−1 agree with the
claimed res-7 cell (within a k-ring, since the public rules give no distance
tolerance). A station whose fixes move consistently to a far cell has
relocated and scores 0 for the following days of the penalty, whatever its
claim says — the state is rebuilt from the data given, so callers must pass
the history they want honoured.
"""
from __future__ import annotations

from typing import Iterable

import h3.api.basic_int as h3i
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.sensor import POL_FLAGS
from transforms.sensor import series
from transforms.sensor.qod import DAY_MS, Scored, prepare, station_days

CLAIM_RES = 7
POL_SCHEMA = pa.schema([
    pa.field("station_id", pa.string()), pa.field("day", pa.int64()),
    pa.field("claimed_cell", pa.uint64()), pa.field("gnss_fixes", pa.int32()),
    pa.field("gnss_cell", pa.uint64()), pa.field("pol_score", pa.float64()),
    pa.field("pol_flags", pa.list_(pa.string())),
])


def fix_cells(lat, lon, accuracy, max_accuracy_m: float, decimals: int) -> np.ndarray:
    """Res-7 cell of each accurate fix, 0 where there is none.

    h3 is scalar-only, so it runs over unique points rounded to `decimals`
    (a station reports the same spot all day, so this is a handful of calls).
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    acc = np.asarray(accuracy, dtype=np.float64)
    ok = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180) \
        & (acc <= max_accuracy_m)  # NaN accuracy is not accurate
    out = np.zeros(len(lat), dtype=np.uint64)
    if not ok.any():
        return out
    pts = np.round(np.stack([lat[ok], lon[ok]], axis=1), decimals)
    uniq, inv = np.unique(pts, axis=0, return_inverse=True)
    cells = np.array([h3i.latlng_to_cell(float(a), float(b), CLAIM_RES) for a, b in uniq],
                     dtype=np.uint64)
    out[ok] = cells[inv.ravel()]
    return out


def _in_disk(centre: np.ndarray, cell: np.ndarray, k: int) -> np.ndarray:
    """cell ∈ grid_disk(centre, k), per pair; a join against the disks of the unique centres."""
    n = len(centre)
    if n == 0:
        return np.zeros(0, dtype=bool)
    uc = np.unique(centre[centre != 0])
    disks = [(c, m) for c in uc.tolist() for m in h3i.grid_disk(c, k)]
    if not disks:
        return np.zeros(n, dtype=bool)
    members = pa.table({"centre": pa.array([d[0] for d in disks], pa.uint64()),
                        "cell": pa.array([d[1] for d in disks], pa.uint64())})
    pairs = pa.table({"centre": pa.array(centre, pa.uint64()), "cell": pa.array(cell, pa.uint64()),
                      "_i": pa.array(np.arange(n, dtype=np.int64))})
    hit = pairs.join(members, ["centre", "cell"], join_type="inner").column("_i").to_numpy()
    out = np.zeros(n, dtype=bool)
    out[hit] = True
    return out


def _day_modes(st: np.ndarray, day: np.ndarray, cell: np.ndarray):
    """Per (station, day): fix count, most frequent cell (ties → lowest), its count."""
    t = pa.table({"st": st, "day": day, "cell": pa.array(cell, pa.uint64())})
    g = t.group_by(["st", "day", "cell"]).aggregate([([], "count_all")])
    g = g.sort_by([("st", "ascending"), ("day", "ascending"), ("count_all", "descending"),
                   ("cell", "ascending")])
    gs, gd = g.column("st").to_numpy(), g.column("day").to_numpy()
    cnt = g.column("count_all").to_numpy()
    first = np.ones(len(gs), dtype=bool)
    first[1:] = (gs[1:] != gs[:-1]) | (gd[1:] != gd[:-1])
    grp = np.cumsum(first) - 1
    total = np.bincount(grp, weights=cnt).astype(np.int64)
    return gs[first], gd[first], total, g.column("cell").to_numpy()[first], cnt[first]


def pol_days(readings_flagged: pa.Table, registry: pa.Table, consts,
             days: Iterable | None = None, scored: Scored | None = None) -> pa.Table:
    """One POL_SCHEMA row per scored station-day (the same station-days `qod.hourly` scores)."""
    c = consts.values if hasattr(consts, "values") else consts
    s = scored if scored is not None else prepare(readings_flagged, registry)
    st_code, st_day = station_days(s, days)
    n = len(st_code)
    k = int(c["pol_k_ring"])
    claimed_all = registry.column("claimed_cell").to_numpy(zero_copy_only=False).astype(np.uint64)
    st_reg = np.zeros(len(s.station_ids), dtype=np.int64)
    st_reg[s.station] = s.reg
    claimed = claimed_all[st_reg[st_code]] if n else np.zeros(0, np.uint64)

    t = s.table
    cell = fix_cells(_f(t, "lat"), _f(t, "lon"), _f(t, "gnss_accuracy_m"),
                     float(c["gnss_max_accuracy_m"]), int(c["gnss_round_decimals"]))
    fx = np.nonzero(cell != 0)[0]
    f_st, f_day, f_cell = s.station[fx], np.floor_divide(s.ts[fx], DAY_MS), cell[fx]
    f_inside = _in_disk(claimed_all[st_reg[f_st]] if len(fx) else np.zeros(0, np.uint64), f_cell, k)

    # Per (station, fix day): counts, inside share, modal cell.
    d_st, d_day, d_total, d_mode, d_mode_n = _day_modes(f_st, f_day, f_cell) if len(fx) else \
        (np.zeros(0, np.int64),) * 5
    d_inside = _sum_by(f_st, f_day, f_inside, d_st, d_day)
    # Relocation: a day whose fixes sit consistently in a cell beyond the k-ring of
    # the previous consistent day's cell.
    consistent = d_mode_n >= float(c["relocation_min_share"]) * np.maximum(d_total, 1)
    ci = np.nonzero(consistent)[0]
    c_st, c_first = d_st[ci], series.starts(d_st[ci])
    prev_mode = series.previous(d_mode[ci].astype(np.uint64), c_first, np.uint64(0))
    moved = ~c_first & ~_in_disk(prev_mode, d_mode[ci].astype(np.uint64), k)
    r_st, r_day = c_st[moved], d_day[ci][moved]

    # Previous-day fixes for each scored day.
    pi = _find(d_st, d_day, st_code, st_day - 1)
    has = pi >= 0
    fixes = np.where(has, d_total[np.clip(pi, 0, None)] if len(d_total) else 0, 0)
    inside = np.where(has, d_inside[np.clip(pi, 0, None)] if len(d_inside) else 0, 0)
    mode = np.where(has, d_mode[np.clip(pi, 0, None)] if len(d_mode) else 0, 0).astype(np.uint64)
    no_gnss = fixes == 0
    outside = ~no_gnss & ((fixes - inside) > float(c["pol_outside_share"]) * fixes)
    relocated = _recently(r_st, r_day, st_code, st_day, int(c["relocation_penalty_days"]))
    flags = np.stack([no_gnss, outside, relocated], axis=1) if n else np.zeros((0, 3), bool)
    score = (~flags.any(axis=1)).astype(np.float64)
    rows, cols = np.nonzero(flags)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(flags.sum(axis=1), out=offsets[1:])
    pol_flags = pa.ListArray.from_arrays(pa.array(offsets), pa.array(
        np.array(POL_FLAGS, dtype=object)[cols] if len(cols) else [], pa.string()))
    return pa.table({
        "station_id": pa.array(np.array(s.station_ids, dtype=object)[st_code] if n else [], pa.string()),
        "day": pa.array(st_day, pa.int64()),
        "claimed_cell": pa.array(claimed, pa.uint64()),
        "gnss_fixes": pa.array(fixes, pa.int32()),
        "gnss_cell": pa.array(mode, pa.uint64(), mask=mode == 0),
        "pol_score": pa.array(score, pa.float64()),
        "pol_flags": pol_flags,
    }, schema=POL_SCHEMA)


def _f(t: pa.Table, name: str) -> np.ndarray:
    return pc.fill_null(t.column(name), np.nan).to_numpy(zero_copy_only=False).astype(np.float64)


def _find(st: np.ndarray, day: np.ndarray, q_st: np.ndarray, q_day: np.ndarray) -> np.ndarray:
    """Index of (q_st, q_day) among sorted (st, day) pairs, −1 when absent."""
    if len(st) == 0 or len(q_st) == 0:
        return np.full(len(q_st), -1, dtype=np.int64)
    lo = min(int(day.min()), int(q_day.min()))
    span = max(int(day.max()), int(q_day.max())) - lo + 1
    key = st.astype(np.int64) * span + (day - lo)
    q = q_st.astype(np.int64) * span + (q_day - lo)
    pos = np.clip(np.searchsorted(key, q), 0, len(key) - 1)
    return np.where(key[pos] == q, pos, -1)


def _sum_by(st, day, flag, d_st, d_day) -> np.ndarray:
    idx = _find(d_st, d_day, st, day)
    return np.bincount(idx[idx >= 0], weights=flag[idx >= 0], minlength=len(d_st)).astype(np.int64)


def _recently(r_st, r_day, q_st, q_day, penalty_days: int) -> np.ndarray:
    """True where the station relocated on a day E with E < day ≤ E + penalty_days."""
    if len(r_st) == 0 or len(q_st) == 0:
        return np.zeros(len(q_st), dtype=bool)
    lo = min(int(r_day.min()), int(q_day.min())) - 1
    span = max(int(r_day.max()), int(q_day.max())) - lo + 2
    key = r_st.astype(np.int64) * span + (r_day - lo)
    q = q_st.astype(np.int64) * span + (q_day - lo)
    pos = np.searchsorted(key, q, side="left") - 1     # latest relocation strictly before the day
    ok = pos >= 0
    pc_ = np.clip(pos, 0, None)
    same = ok & (r_st[pc_] == q_st)
    return same & (q_day - r_day[pc_] <= penalty_days)
