"""Vectorized verification of frame metadata, all devices of a bucket at once.

Frames are sorted once by (device, captured_at, source order); every
per-device quantity is then a shift along that order with device-boundary
masks. Sequence rules are computed on the subset of frames that passed the
frame rules and scattered back, which is what "compare with the previous
frame that passed" means without a per-frame loop. Pure: Arrow in, Arrow out.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.imagery import DEVICE_REGISTRY, IMAGERY_OUT, RAW_FRAME
from schemas.provenance import RUN_FIELDS
from transforms import h3util
from transforms.imagery.rules import FRAME_RULES, SEQUENCE_RULES, Reason
from transforms.order import lexsort
from transforms.keys import KeyIndex
from transforms.rules import Constants, evaluate, reasons_from_matrix, verdicts

CELL_RES = 15
_RUN = {f.name for f in RUN_FIELDS}
VERIFIED_FRAME = pa.schema([f for f in IMAGERY_OUT if f.name not in _RUN],
                           metadata=IMAGERY_OUT.metadata)
_DUP_ID = next(r.id for r in FRAME_RULES.rules if r.reason == Reason.DUPLICATE_FRAME)


def _f64(t: pa.Table, name: str) -> np.ndarray:
    if name not in t.column_names:
        return np.full(t.num_rows, np.nan)
    return pc.fill_null(t.column(name).cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)


def _column(t: pa.Table, f: pa.Field) -> pa.ChunkedArray | pa.Array:
    return t.column(f.name).cast(f.type) if f.name in t.column_names else pa.nulls(t.num_rows, f.type)


def _prev(mask: np.ndarray, start: np.ndarray, inclusive: bool = False) -> np.ndarray:
    """Index of the last row j (< i, or ≤ i if inclusive) of the same group with mask[j]; -1 if none.
    `start[i]` is the index of the first row of i's group."""
    n = len(mask)
    last = np.maximum.accumulate(np.where(mask, np.arange(n), -1)) if n else np.zeros(0, np.int64)
    if not inclusive:
        last = np.concatenate(([-1], last[:-1])) if n else last
    return np.where(last >= start, last, -1)


def _group_start(new: np.ndarray) -> np.ndarray:
    """For each row, the index of the first row of its group (groups are contiguous)."""
    n = len(new)
    return np.maximum.accumulate(np.where(new, np.arange(n), 0)) if n else np.zeros(0, np.int64)


def _dist(lat, lon, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Haversine metres between rows a and b (index arrays); NaN where either is -1."""
    ok = (a >= 0) & (b >= 0)
    a0, b0 = np.where(ok, a, 0), np.where(ok, b, 0)
    d = h3util.haversine_m(lat[a0], lon[a0], lat[b0], lon[b0]) if len(a) else np.zeros(0)
    return np.where(ok, d, np.nan)


def _codes(col) -> np.ndarray:
    """Integer code per value (nulls → -1)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if len(col) == 0:
        return np.zeros(0, np.int64)
    enc = pc.dictionary_encode(col)
    return pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _nanmedian(m: np.ndarray) -> np.ndarray:
    """Row medians ignoring NaN; all-NaN rows give NaN. Those rows are left
    out of the numpy call rather than silenced with `warnings.catch_warnings`,
    which swaps process-wide filters and let the warning through when another
    Beam thread restored them mid-call."""
    out = np.full(m.shape[0], np.nan)
    has = ~np.isnan(m).all(axis=1) if m.shape[0] else np.zeros(0, bool)
    if has.any():
        out[has] = np.nanmedian(m[has], axis=1)
    return out


def _lagged(values: np.ndarray, start: np.ndarray, window: int) -> np.ndarray:
    """rows × window matrix of values[i−1 … i−window] within the group, NaN beyond it."""
    n = len(values)
    idx = np.arange(n)[:, None] - np.arange(1, window + 1)[None, :]
    inside = idx >= start[:, None]
    return np.where(inside, values[np.clip(idx, 0, None)] if n else np.zeros((0, window)), np.nan)


def cells(lat: np.ndarray, lon: np.ndarray, res: int) -> np.ndarray:
    """uint64 H3 cell per point (0 = invalid coordinates); h3 is called once per distinct point."""
    pts = np.stack([lat, lon], axis=1) if len(lat) else np.zeros((0, 2))
    uniq, inv = np.unique(pts, axis=0, return_inverse=True)
    out = h3util.to_numpy_u64(h3util.latlng_to_cells(uniq[:, 0], uniq[:, 1], res))
    return out[inv.reshape(-1)] if len(lat) else np.zeros(0, np.uint64)


def device_registry(t: pa.Table | None) -> pa.Table:
    """The optional device registry as DEVICE_REGISTRY (missing columns null, first row per device wins)."""
    if t is None:
        return DEVICE_REGISTRY.empty_table()
    out = pa.table({f.name: _column(t, f) for f in DEVICE_REGISTRY}).filter(
        pc.is_valid(t.column("device_id")))
    first = np.unique(_codes(out.column("device_id")), return_index=True)[1]
    return out.take(pa.array(np.sort(first))) if out.num_rows else out


def _registry_spacing(dev_ids, registry: pa.Table, default: float) -> tuple[np.ndarray, np.ndarray]:
    """(spacing m per frame, True where the device is known to trigger by distance)."""
    n = len(dev_ids)
    if registry.num_rows == 0:
        return np.full(n, float(default)), np.zeros(n, bool)
    idx = KeyIndex(registry.column("device_id")).find(dev_ids)
    found = idx >= 0
    at = np.where(found, idx, 0)
    spacing = _f64(registry, "frame_spacing_m")[at]
    mode = pc.fill_null(registry.column("capture_mode"), "").to_numpy(zero_copy_only=False)[at]
    has = found & np.isfinite(spacing) & (spacing > 0)
    return np.where(has, spacing, float(default)), has & (np.char.lower(mode.astype(str)) == "distance")


def _duplicates(t: pa.Table, lat, lon, heading, captured, base_ok, start, c: Constants) -> np.ndarray:
    """Same image hash as an earlier frame (any device), or no real move since the
    device's previous frame that passed the other frame rules."""
    n = t.num_rows
    sha = pc.binary_join_element_wise("sha256:", _column(t, RAW_FRAME.field("image_sha256")), "")
    md5 = pc.binary_join_element_wise("md5:", _column(t, RAW_FRAME.field("image_md5")), "")
    code = _codes(pc.coalesce(sha, md5))
    order = lexsort((captured, code))
    later = np.zeros(n, bool)
    cs = code[order]
    later[1:] = (cs[1:] == cs[:-1]) & (cs[1:] >= 0)
    dup = np.zeros(n, bool)
    dup[order] = later
    p = _prev(base_ok, start)
    d = _dist(lat, lon, p, np.arange(n))
    hp = heading[np.where(p >= 0, p, 0)] if n else heading
    dh = np.abs(np.mod(heading - hp + 180.0, 360.0) - 180.0)
    same_heading = ~(dh > c["duplicate_heading_deg"])  # unknown heading: position decides
    return dup | (base_ok & (p >= 0) & (d <= c["duplicate_distance_m"]) & same_heading)


def _steps(la, lo, ts, prev):
    """Distance (m), Δt (ms) and implied speed (m/s) from row prev[i] to row i."""
    has = prev >= 0
    d = _dist(la, lo, prev, np.arange(len(prev)))
    dt = np.where(has, ts - ts[np.clip(prev, 0, None)], 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(has & (dt > 0), d / (dt / 1000.0), np.nan)
    return d, dt, v


def _jumps(la, lo, ts, dev_new, spacing, distance_mode, c: Constants):
    """(non_increasing, too_fast, teleport) of each passing frame vs the previous one."""
    m = len(ts)
    idx = np.arange(m)
    start = _group_start(dev_new)
    prev = np.where(dev_new, -1, idx - 1)
    d, dt, v = _steps(la, lo, ts, prev)
    has_prev = prev >= 0
    vmax = c["max_speed_mps"]
    fast_raw = v > vmax
    # The frame after a lone jump is judged from the frame before the jump.
    prev2 = np.where(has_prev & (idx - 2 >= start), idx - 2, -1)
    v2 = _steps(la, lo, ts, prev2)[2]
    fast_before = np.concatenate(([False], fast_raw[:-1])) if m else fast_raw
    too_fast = fast_raw & ~(fast_before & (prev2 >= 0) & (v2 <= vmax))
    # Teleport: against the device's own recent spacing and speed, not a fixed distance.
    w = max(int(c["teleport_window"]), 1)
    steps, speeds = _lagged(d, start, w), _lagged(v, start, w)
    history = np.sum(np.isfinite(steps), axis=1)
    candidates = np.stack([spacing, _nanmedian(steps), steps[:, 0], _nanmedian(speeds) * dt / 1000.0], axis=1)
    # fmax skips NaN like nanmax, and an all-NaN row gives NaN without a warning.
    expected = np.fmax.reduce(candidates, axis=1) if m else np.zeros(0)
    judged = has_prev & ((history >= int(c["teleport_min_history"])) | distance_mode)
    teleport = judged & (d > c["teleport_factor"] * expected)
    return has_prev & (dt <= 0), too_fast, teleport


def _split(la, lo, ts, seq, dev_new, c: Constants) -> tuple[np.ndarray, np.ndarray]:
    """(global sequence id, 0-based index within the device) of each frame."""
    prev = np.where(dev_new, -1, np.arange(len(ts)) - 1)
    d, dt, _ = _steps(la, lo, ts, prev)
    changed = (prev >= 0) & (seq != seq[np.clip(prev, 0, None)]) if len(ts) else dev_new
    new = dev_new | (d > c["split_distance_m"]) | (dt > c["split_gap_ms"]) | changed
    seq_global = np.cumsum(new) - 1
    return seq_global, seq_global - seq_global[_group_start(dev_new)] if len(ts) else seq_global


def _zigzag(la, lo, seq_global, c: Constants) -> np.ndarray:
    """Out-and-back spikes within the window centred on each frame, inside one sequence."""
    m = len(la)
    gi = np.arange(m)
    zig = np.zeros(m, bool)
    if m == 0:
        return zig
    for k in range(1, int(c["zigzag_window"]) // 2 + 1):
        lo_i, hi_i = gi - k, gi + k
        ok = (lo_i >= 0) & (hi_i < m)
        same = seq_global[np.clip(lo_i, 0, None)] == seq_global
        ok &= same & (seq_global[np.clip(hi_i, 0, m - 1)] == seq_global)
        lo_i, hi_i = np.where(ok, lo_i, -1), np.where(ok, hi_i, -1)
        out, back, net = _dist(la, lo, lo_i, gi), _dist(la, lo, gi, hi_i), _dist(la, lo, lo_i, hi_i)
        jump = c["zigzag_jump_m"]
        zig |= ok & (out > jump) & (back > jump) & (net <= (1.0 - c["zigzag_ratio"]) * (out + back))
    return zig


def _stationary(la, lo, seq_global, c: Constants) -> np.ndarray:
    """Frames of sequences (≥ 2 frames) whose bounding-box diagonal is within the radius."""
    if len(la) == 0:
        return np.zeros(0, bool)
    starts = np.nonzero(np.diff(seq_global, prepend=-1))[0]
    count = np.diff(np.append(starts, len(la)))
    diag = h3util.haversine_m(np.minimum.reduceat(la, starts), np.minimum.reduceat(lo, starts),
                              np.maximum.reduceat(la, starts), np.maximum.reduceat(lo, starts))
    return ((count >= 2) & (diag <= c["stationary_radius_m"]))[seq_global]


def _sequence(lat, lon, captured, seq_codes, kept_idx, dev_new_k, spacing, distance_mode, c: Constants):
    """Sequence verdicts over the frames that passed the frame rules (`kept_idx`, sorted):
    jumps first, then sequences and their shape over the frames that also passed the jumps."""
    la, lo, ts = lat[kept_idx], lon[kept_idx], captured[kept_idx]
    non_increasing, too_fast, teleport = _jumps(la, lo, ts, dev_new_k, spacing[kept_idx],
                                                distance_mode[kept_idx], c)
    g = np.nonzero(~(non_increasing | too_fast | teleport))[0]
    gdev = np.cumsum(dev_new_k)[g]
    gnew_dev = np.diff(gdev, prepend=-1) != 0
    seq_global, seq_local = _split(la[g], lo[g], ts[g], seq_codes[kept_idx][g], gnew_dev, c)
    return {
        "too_fast": too_fast, "teleport": teleport, "good": g,
        "zigzag": _zigzag(la[g], lo[g], seq_global, c),
        "stationary": _stationary(la[g], lo[g], seq_global, c), "seq_local": seq_local,
    }


def _scatter(n: int, idx: np.ndarray, values: np.ndarray, fill) -> np.ndarray:
    out = np.full(n, fill, dtype=values.dtype if len(values) else np.asarray(fill).dtype)
    out[idx] = values
    return out


def verify_frames(table: pa.Table | Sequence[pa.Table], devices: pa.Table | None,
                  consts_frame: Constants, consts_seq: Constants, now_ms: int) -> pa.Table:
    """Canonical frames (any devices, files and order, with source columns) →
    VERIFIED_FRAME rows sorted by (device_id, captured_at, source order)."""
    if not isinstance(table, pa.Table):
        table = pa.concat_tables(list(table), promote_options="permissive")
    n = table.num_rows
    if n == 0:
        return VERIFIED_FRAME.empty_table()
    order = pc.sort_indices(table, [("device_id", "ascending"), ("captured_at", "ascending"),
                                    ("source_uri", "ascending"), ("source_record", "ascending")])
    t = table.take(order)
    dev_codes = _codes(t.column("device_id"))
    dev_new = np.concatenate(([True], dev_codes[1:] != dev_codes[:-1]))
    start = _group_start(dev_new)
    lat, lon, heading = _f64(t, "lat"), _f64(t, "lon"), _f64(t, "heading")
    captured = pc.fill_null(t.column("captured_at"), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    received = _f64(t, "received_at")
    fix = _column(t, RAW_FRAME.field("fix"))
    ctx = {
        "lat": lat, "lon": lon,
        "fix_not_3d": pc.fill_null(pc.not_equal(fix, "3D"), False).to_numpy(zero_copy_only=False),
        "satellites": _f64(t, "satellites"), "hdop": _f64(t, "hdop"), "gdop": _f64(t, "gdop"),
        "eph": _f64(t, "eph"), "bytes": _f64(t, "bytes"),
        "captured": captured, "received": np.nan_to_num(received, nan=0.0),
        "has_received": np.isfinite(received), "now_ms": np.int64(now_ms),
        "duplicate": np.zeros(n, bool),
    }
    base_ids = {r.id for r in FRAME_RULES.rules} - {_DUP_ID}
    m_frame = evaluate(FRAME_RULES, ctx, consts_frame, n, only=base_ids)
    ctx["duplicate"] = _duplicates(t, lat, lon, heading, captured, ~m_frame.any(axis=1), start, consts_frame)
    m_frame |= evaluate(FRAME_RULES, ctx, consts_frame, n, only={_DUP_ID})
    kept = ~m_frame.any(axis=1)

    # Distance / time to the previous frame that passed the frame rules, for every row.
    p = _prev(kept, start)
    dist = _dist(lat, lon, p, np.arange(n))
    dt = np.where(p >= 0, captured - captured[np.clip(p, 0, None)], 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = np.where((p >= 0) & (dt > 0), dist / (dt / 1000.0), np.nan)

    kidx = np.nonzero(kept)[0]
    spacing, distance_mode = _registry_spacing(t.column("device_id"), device_registry(devices),
                                               consts_seq["frame_spacing_m"])
    seq_codes = _codes(_column(t, RAW_FRAME.field("sequence_id")))
    s = _sequence(lat, lon, captured, seq_codes, kidx, p[kidx] < 0, spacing,
                  distance_mode, consts_seq)
    good_idx = kidx[s["good"]]
    sctx = {
        "has_prev": kept & (p >= 0), "dt_ms": dt,
        "too_fast": _scatter(n, kidx, s["too_fast"], False),
        "teleport": _scatter(n, kidx, s["teleport"], False),
        "zigzag": _scatter(n, good_idx, s["zigzag"], False),
        "stationary": _scatter(n, good_idx, s["stationary"], False),
    }
    m_seq = evaluate(SEQUENCE_RULES, sctx, consts_seq, n)
    reasons = reasons_from_matrix(SEQUENCE_RULES, m_seq, prefix=reasons_from_matrix(FRAME_RULES, m_frame))

    # Sequence index: a frame that failed carries the index of the sequence it fell in.
    seq_at = _scatter(n, good_idx, s["seq_local"].astype(np.int64), np.int64(-1))
    last = _prev(seq_at >= 0, start, inclusive=True)
    seq_index = np.where(last >= 0, seq_at[np.clip(last, 0, None)], 0).astype(np.int32)

    cell = cells(lat, lon, CELL_RES)
    coverage = np.where(cell != 0, h3util.parent(cell, int(consts_frame["coverage_res"])), 0)
    has_p = p >= 0
    cols = {f.name: _column(t, f) for f in RAW_FRAME}
    cols.update({
        "cell": pa.array(cell, pa.uint64(), mask=cell == 0),
        "coverage_cell": pa.array(coverage.astype(np.uint64), pa.uint64(), mask=cell == 0),
        "distance_prev_m": pa.array(dist, pa.float64(), mask=~np.isfinite(dist)),
        "speed_prev_mps": pa.array(speed, pa.float64(), mask=~np.isfinite(speed)),
        "dt_prev_ms": pa.array(dt, pa.int64(), mask=~has_p),
        "sequence_index": pa.array(seq_index, pa.int32()),
        "verdict": verdicts(reasons), "reasons": reasons,
    })
    for f in VERIFIED_FRAME:
        if f.name not in cols:
            cols[f.name] = _column(t, f)
    return pa.table({f.name: cols[f.name] for f in VERIFIED_FRAME}, schema=VERIFIED_FRAME)
