"""Verify a group of stations' packets: flags, verdicts, hourly and daily scores.

Pure Arrow in, Arrow out, so the Beam pipeline calls it per group of
stations (every packet of a station must be in the same call, including the
hours before the first day scored, or the rolling checks see gaps).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.provenance import SOURCE_FIELDS
from schemas.sensor import MODELS, RAW_READING, SENSOR_OUT, VARIABLE_COLUMNS, VARIABLE_NAMES
from transforms.rules import Constants, RuleSet, evaluate, reasons_from_matrix, verdicts
from transforms.order import lexsort
from transforms.sensor import pol, qod, series
from transforms.sensor.rules import SENSOR_RULES, Ctx
from transforms.sensor.source import lookup

_SRC = [f.name for f in SOURCE_FIELDS]
_OUT_NAMES = [f.name for f in SENSOR_OUT if f.name not in
              ("run_id", "pipeline_version", "rules_version", "ingested_at")]
_OUT_SCHEMA = pa.schema([SENSOR_OUT.field(n) for n in _OUT_NAMES])
# Columns that make two packets "the same packet" when their timestamps agree.
_CONTENT = [f.name for f in RAW_READING if f.name not in ("station_id", "timestamp", "model")]

# One rule subset per variable → the `<variable>_flags` columns.
_VAR_RULES = {v: (RuleSet(f"sensor.{v}", SENSOR_RULES.version,
                          tuple(r for r in SENSOR_RULES.rules if r.side == v)),
                  [j for j, r in enumerate(SENSOR_RULES.rules) if r.side == v])
              for v in VARIABLE_NAMES}


def _np(col, fill, dtype=None):
    a = pc.fill_null(col, fill).to_numpy(zero_copy_only=False)
    return a.astype(dtype) if dtype is not None else a


def _same_as(first_idx: np.ndarray, t: pa.Table) -> np.ndarray:
    """Row identical (NaN == NaN) to the row at first_idx in every content column and model."""
    same = np.ones(t.num_rows, dtype=bool)
    for name in _CONTENT:
        a = _np(t.column(name), np.nan, np.float64)
        b = a[first_idx]
        same &= (a == b) | (np.isnan(a) & np.isnan(b))
    m = _np(t.column("model"), "", None).astype(object)
    return same & (m == m[first_idx])


def _order_flags(t: pa.Table, station: np.ndarray, ts: np.ndarray, now_ms: int, future_skew_ms: int):
    """(duplicate, out_of_order, in_series) for rows sorted by (station, ts, source_uri, source_record)."""
    n = t.num_rows
    first = series.starts(station)
    new_key = first | (ts != series.previous(ts, first, -1))
    idx = np.arange(n)
    first_idx = np.maximum.accumulate(np.where(new_key, idx, 0)) if n else idx
    identical = _same_as(first_idx, t)
    duplicate = ~new_key & identical
    conflict = ~new_key & ~identical
    # Δt ≤ 0 in file order: a packet not later than an earlier one of the same station and file.
    uri = _np(pc.dictionary_encode(t.column("source_uri")).combine_chunks().indices, 0, np.int64) \
        if n else np.zeros(0, np.int64)
    rec = _np(t.column("source_record"), 0, np.int64)
    # A future-dated packet is judged on its own and does not make its successors late.
    future = ts > now_ms + future_skew_ms
    order = lexsort((rec, uri, station))
    fo_first = series.starts(station[order]) | series.starts(uri[order])
    before = series.running_max_before(np.where(future, np.iinfo(np.int64).min, ts)[order], fo_first)
    backward = np.zeros(n, dtype=bool)
    backward[order] = ts[order] <= before
    out_of_order = (backward | conflict) & ~duplicate
    in_series = new_key & ~future
    return duplicate, out_of_order, in_series


def _models(t: pa.Table, registry: pa.Table, reg: np.ndarray):
    """(effective model code, model mismatch): the registry's model wins, the packet's fills in."""
    row = _np(t.column("model"), "", None).astype(object)
    row_code = np.full(len(row), -1, dtype=np.int64)
    for k, name in enumerate(MODELS):
        row_code[row == name] = k
    reg_names = _np(registry.column("model"), "", None).astype(object)
    reg_model = reg_names[np.clip(reg, 0, None)] if len(reg_names) else np.full(len(reg), "", object)
    reg_model = np.where(reg >= 0, reg_model, "")
    reg_code = np.full(len(row), -1, dtype=np.int64)
    for k, name in enumerate(MODELS):
        reg_code[reg_model == name] = k
    model = np.where(reg_code >= 0, reg_code, row_code)
    given = row != ""
    mismatch = given & ((row_code < 0) | ((reg_code >= 0) & (row_code != reg_code)))
    return model, mismatch


def flag_readings(table: pa.Table, registry: pa.Table, consts: Constants, now_ms: int) -> pa.Table:
    """Canonical packets (+ source columns) → SENSOR_OUT rows without the run columns,
    sorted by (station_id, timestamp, source_uri, source_record)."""
    t = qod.in_series_order(table.select([f.name for f in RAW_READING] + _SRC))
    n = t.num_rows
    sid = t.column("station_id")
    station = _np(pc.dictionary_encode(sid).combine_chunks().indices, 0, np.int64) if n else np.zeros(0, np.int64)
    ts = _np(t.column("timestamp"), 0, np.int64)
    reg = lookup(sid, registry)
    model, mismatch = _models(t, registry, reg)
    duplicate, out_of_order, in_series = _order_flags(t, station, ts, now_ms, int(consts["future_skew_ms"]))
    ctx = Ctx(station=station, ts=ts, model=model, station_found=reg >= 0, model_mismatch=mismatch,
              duplicate=duplicate, out_of_order=out_of_order, in_series=in_series,
              values={v: _np(t.column(VARIABLE_COLUMNS[v]), np.nan, np.float64) for v in VARIABLE_NAMES},
              now_ms=int(now_ms))
    m = evaluate(SENSOR_RULES, ctx, consts, n)
    reasons = reasons_from_matrix(SENSOR_RULES, m)
    claimed = registry.column("claimed_cell").to_numpy(zero_copy_only=False).astype(np.uint64)
    claimed_row = np.where(reg >= 0, claimed[np.clip(reg, 0, None)] if len(claimed) else 0, 0).astype(np.uint64)
    gcell = pol.fix_cells(_np(t.column("lat"), np.nan, np.float64), _np(t.column("lon"), np.nan, np.float64),
                          _np(t.column("gnss_accuracy_m"), np.nan, np.float64),
                          float(consts["gnss_max_accuracy_m"]), int(consts["gnss_round_decimals"]))
    cols = {name: t.column(name) for name in t.column_names}
    cols["claimed_cell"] = pa.array(claimed_row, pa.uint64(), mask=claimed_row == 0)
    cols["gnss_cell"] = pa.array(gcell, pa.uint64(), mask=gcell == 0)
    for v, (sub, js) in _VAR_RULES.items():
        cols[f"{v}_flags"] = reasons_from_matrix(sub, m[:, js])
    cols["verdict"] = verdicts(reasons)
    cols["reasons"] = reasons
    return pa.table([cols[k] for k in _OUT_NAMES], schema=_OUT_SCHEMA)


def verify_readings(table: pa.Table, registry: pa.Table, consts: Constants, now_ms: int,
                    days: Iterable | None = None) -> tuple[pa.Table, pa.Table, pa.Table]:
    """→ (packets, hourly, daily), all without the run columns (stamped at write time).

    `days` (ints since epoch, 'YYYY-MM-DD' or dates) limits the scored days;
    by default every UTC day holding a packet is scored, including a partial
    context day at the start.
    """
    out = flag_readings(table, registry, consts, now_ms)
    scored = qod.prepare(out, registry)
    hourly = qod.hourly(out, registry, consts, days, scored=scored)
    pols = pol.pol_days(out, registry, consts, days, scored=scored)
    daily = qod.daily(hourly, pols, consts)
    return out, hourly, daily
