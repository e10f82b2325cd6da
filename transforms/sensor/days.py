"""Which station-days a batch scores, and `verify_bucket`, the batch's call
into `verify.verify_readings`.

A daily score needs the 6 hours before the day (rolling windows), so inputs
for day D usually hold D−1 18:00–24:00 as well. Scored on its own, that
context would give D−1 a mostly-silent day with a QoD near 0.25. The rule,
per station (so it does not depend on how stations are bucketed or files
split):

* a station-day is scored when the station has a packet that day, except
* a *context-only* day: every packet of the station on D−1 lies in its last
  `CONTEXT_MS` (6 h, plus `SLACK_MS` = 1 h for clock jitter and upload
  cut-offs, i.e. from 17:00) and the station also has packets on D — then
  D−1 is only the context of D;
* a day that has not ended at the run's `now` (+ future_skew_ms) is in
  progress: a score of part of a day would be wrong, so it is left to a
  later run;
* packets that can never be scored do not make a day: future-dated ones
  (> now + future_skew_ms) and stale ones (< now − stale_after_ms). A stale
  packet is still written (invalid, `stale`) to its date's `sensor`
  partition, but it does not create a near-empty daily row for a month ago.

A station that only started reporting at 19:00 on D−1 looks exactly like
context and is treated so; scoring that evening would give < 0.25 anyway.
Callers that know better pass `days` explicitly: then exactly those days are
scored for every station with packets on them.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.rules import Constants
from transforms.sensor.qod import DAY_MS, day_number
from transforms.sensor.verify import verify_readings

CONTEXT_MS = 6 * 3_600_000
SLACK_MS = 3_600_000


def _codes(ids) -> tuple[np.ndarray, pa.Array]:
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    enc = pc.dictionary_encode(ids)
    return pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary


def scored_station_days(station_id, ts: np.ndarray, now_ms: int, consts: Constants | dict
                        ) -> tuple[pa.Array, np.ndarray]:
    """(station_id, day number) pairs to score from packet stations and times (ms)."""
    c = consts.values if hasattr(consts, "values") else consts
    ts = np.asarray(ts, dtype=np.int64)
    code, names = _codes(station_id)
    ok = (ts <= now_ms + int(c["future_skew_ms"])) & (ts >= now_ms - int(c["stale_after_ms"])) & (code >= 0)
    code, ts = code[ok], ts[ok]
    if not len(ts):
        return pa.array([], pa.string()), np.zeros(0, np.int64)
    day = np.floor_divide(ts, DAY_MS)
    ended = (day + 1) * DAY_MS <= now_ms + int(c["future_skew_ms"])
    code, ts, day = code[ended], ts[ended], day[ended]
    if not len(ts):
        return pa.array([], pa.string()), np.zeros(0, np.int64)
    t = pa.table({"s": code, "d": day, "t": ts}).group_by(["s", "d"]).aggregate([("t", "min")])
    s = t.column("s").to_numpy()
    d = t.column("d").to_numpy()
    first = t.column("t_min").to_numpy()
    span = int(d.max()) - int(d.min()) + 2
    key = s * span + (d - int(d.min()))
    has_next = np.isin(key + 1, key)
    context_only = has_next & (first - d * DAY_MS >= DAY_MS - CONTEXT_MS - SLACK_MS)
    keep = ~context_only
    order = np.lexsort((d[keep], s[keep]))
    return names.take(pa.array(s[keep][order])), d[keep][order].astype(np.int64)


def _pair_mask(station_id, day: np.ndarray, pairs: tuple[pa.Array, np.ndarray]) -> np.ndarray:
    """Rows whose (station_id, day) is one of `pairs`."""
    p_ids, p_days = pairs
    if not len(p_days) or not len(day):
        return np.zeros(len(day), dtype=bool)
    uniq = pc.unique(p_ids)
    p_code = pc.index_in(p_ids, value_set=uniq).to_numpy(zero_copy_only=False).astype(np.int64)
    r_code = pc.fill_null(pc.index_in(station_id, value_set=uniq), -1).to_numpy(zero_copy_only=False)
    lo = min(int(p_days.min()), int(day.min()))
    span = max(int(p_days.max()), int(day.max())) - lo + 1
    keys = p_code * span + (p_days - lo)
    return (r_code >= 0) & np.isin(r_code.astype(np.int64) * span + (day - lo), keys)


def verify_bucket(table: pa.Table, registry: pa.Table, consts: Constants, now_ms: int,
                  days: Iterable | None = None) -> tuple[pa.Table, pa.Table, pa.Table]:
    """`verify_readings` over all packets of a group of stations, scoring the
    station-days chosen as the module docstring says (or exactly `days`)."""
    # One chunk per column: the sorts and takes inside are several times faster
    # than on the many small chunks a bucket is concatenated from.
    table = table.combine_chunks()
    if days is not None:
        return verify_readings(table, registry, consts, now_ms, days=[day_number(d) for d in days])
    ts = pc.fill_null(table.column("timestamp"), 0).to_numpy(zero_copy_only=False)
    pairs = scored_station_days(table.column("station_id"), ts, now_ms, consts)
    readings, hourly, daily = verify_readings(table, registry, consts, now_ms,
                                              days=sorted(set(pairs[1].tolist())))
    # A day scored for one station may be context for another: keep only chosen pairs.
    if hourly.num_rows:
        h_day = np.floor_divide(hourly.column("hour_start").cast(pa.int64()).to_numpy(zero_copy_only=False), DAY_MS)
        m = _pair_mask(hourly.column("station_id"), h_day, pairs)
        if not m.all():
            hourly = hourly.filter(pa.array(m))
    if daily.num_rows:
        d_day = daily.column("day").cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
        m = _pair_mask(daily.column("station_id"), d_day, pairs)
        if not m.all():
            daily = daily.filter(pa.array(m))
    return readings, hourly, daily
