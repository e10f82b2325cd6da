"""Streaming windows of the sensor source, over the batch verification functions.

Why the window is the station-day and not the hour: a packet's flags are not
final when its hour ends. Spikes are judged with the next packet, and a stuck
run of identical values flags *all* its packets once it fills 2–24 h, so
later packets can still condemn earlier ones. The hourly and daily scores are
computed from those flags, and batch scores only some days (no context-only
evening of D−1, see transforms/sensor/days.py), which depends on whether the
station reports on D+1. So a station-day D is *closed* when the watermark
passes the end of D plus `SETTLE_MS` (6 h, the context a day score reads).
Then its packets, its 24 hourly rows and its daily row are written together.

Every emitted row is computed by `verify_readings` on all retained packets of
the stations involved, and the scored (station, day) pairs are chosen by
batch's `scored_station_days`. These are the same calls batch makes, so
verdicts match batch whenever the retained history covers what batch saw.
Retained: every packet not yet written, plus written ones for two days plus
the allowed lateness, which covers the 6 h rolling context of the next day.
"""
from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.provenance import SOURCE_FIELDS
from schemas.sensor import RAW_READING
from transforms import fileio
from transforms.beam.windows import (LATE, NEG_INF, POS_INF, WindowSettings, WindowState, Windower, concat,
                                     filt, is_in, late_mask, mark_late, np_times, observe, per_source, row_ids)
from transforms.rules import Constants
from transforms.sensor.days import _pair_mask, scored_station_days
from transforms.sensor.qod import DAY_MS
from transforms.sensor.verify import verify_readings

RAW = pa.schema(list(RAW_READING) + list(SOURCE_FIELDS))
HELD = RAW.append(pa.field("_emitted", pa.bool_()))
DONE = pa.schema([("station_id", pa.string()), ("day", pa.int64())])
T = "timestamp"
SETTLE_MS = 6 * 3_600_000
KIND = "reading"

_REFS: dict[str, pa.Table] = {}


def _ref(uri: str) -> pa.Table:
    """Parsed once per process: each micro-batch's DoFn reuses it."""
    if uri not in _REFS:
        _REFS[uri] = pq.read_table(io.BytesIO(fileio.read_bytes(uri, decompress=False)))
    return _REFS[uri]


def _bools(t: pa.Table, col: str) -> np.ndarray:
    return pc.fill_null(t.column(col), False).to_numpy(zero_copy_only=False).astype(bool)


def _stations_mask(t: pa.Table, ids: pa.Array) -> np.ndarray:
    if t.num_rows == 0 or len(ids) == 0:
        return np.zeros(t.num_rows, bool)
    return pc.fill_null(pc.is_in(t.column("station_id"), value_set=ids), False).to_numpy(
        zero_copy_only=False).astype(bool)


class SensorWindower(Windower):
    kinds = (KIND,)
    outputs = ("sensor", "sensor_hourly", "sensor_daily")
    state_schemas = {"readings": HELD, "days_done": DONE}

    def __init__(self, registry_uri: str, consts: Constants):
        self.registry_uri, self.consts = registry_uri, consts

    def carried(self, state: WindowState) -> dict[str, int]:
        r = state.tables["readings"]
        return per_source([filt(r, ~_bools(r, "_emitted"))]) if r.num_rows else {}

    def step(self, state, new, ws: WindowSettings):
        registry = _ref(self.registry_uri)
        now = ws.now_ms
        L = ws.allowed_lateness_ms
        new_r = concat([new[KIND]], RAW) if new.get(KIND) is not None else RAW.empty_table()
        wm_prev = state.join_watermark
        late = late_mask(new_r, T, wm_prev, L)
        observe(state, KIND, new_r, T, now)
        wm = state.watermark(KIND, ws.max_delay_ms)
        wm_eff = POS_INF if ws.drain else wm
        held = state.tables["readings"]
        done = state.tables["days_done"]
        fresh = filt(new_r, ~late)
        lr = filt(new_r, late)
        pool = concat([held, fresh.append_column("_emitted", pa.array(np.zeros(fresh.num_rows, bool)))], HELD)
        emitted = _bools(pool, "_emitted")
        ts = np_times(pool, T)
        day = np.floor_divide(ts, DAY_MS)
        closed = (day + 1) * DAY_MS + SETTLE_MS <= wm_eff
        ready = ~emitted & closed
        touched = pc.unique(pa.concat_arrays([filt(pool, ready).column("station_id").combine_chunks(),
                                              lr.column("station_id").combine_chunks()]))
        outs = {"sensor": [], "sensor_hourly": [], "sensor_daily": []}
        if len(touched):
            mine = _stations_mask(pool, touched)
            hist = filt(pool, mine).drop_columns(["_emitted"])
            both = concat([hist, lr], RAW)
            pairs = scored_station_days(both.column("station_id"), np_times(both, T), now, self.consts)
            p_ids, p_days = pairs
            # Scored pairs whose day closed and was not written yet; late packets never re-open a day.
            if len(p_days):
                open_ok = (p_days + 1) * DAY_MS + SETTLE_MS <= wm_eff
                if done.num_rows:
                    already = _pair_mask(done.column("station_id"), done.column("day").to_numpy(), pairs)
                    dk = set(zip(filt(done, already).column("station_id").to_pylist(),
                                 filt(done, already).column("day").to_pylist()))
                    not_done = np.array([(s, int(d)) not in dk for s, d in zip(p_ids.to_pylist(), p_days)], bool)
                else:
                    not_done = np.ones(len(p_days), bool)
                sel = open_ok & not_done
                emit_pairs = (p_ids.filter(pa.array(sel)), p_days[sel])
            else:
                emit_pairs = (pa.array([], pa.string()), np.zeros(0, np.int64))
            rows, hourly, daily = verify_readings(both, registry, self.consts, now,
                                                  days=sorted(set(emit_pairs[1].tolist())))
            if hourly.num_rows:
                h_day = np.floor_divide(hourly.column("hour_start").cast(pa.int64()).to_numpy(zero_copy_only=False),
                                        DAY_MS)
                hourly = filt(hourly, _pair_mask(hourly.column("station_id"), h_day, emit_pairs))
            if daily.num_rows:
                d_day = daily.column("day").cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
                daily = filt(daily, _pair_mask(daily.column("station_id"), d_day, emit_pairs))
            ready_ids = row_ids(filt(pool, ready))
            outs["sensor"] = [filt(rows, is_in(rows, ready_ids)), mark_late(filt(rows, is_in(rows, row_ids(lr))))]
            outs["sensor_hourly"], outs["sensor_daily"] = [hourly], [daily]
            done = concat([done, pa.table({"station_id": emit_pairs[0], "day": pa.array(emit_pairs[1], pa.int64())})],
                          DONE)
        pool = pool.set_column(pool.schema.get_field_index("_emitted"), "_emitted", pa.array(emitted | ready))
        # Late packets were written at once; they stay as context for their station's later packets.
        pool = concat([pool, lr.append_column("_emitted", pa.array(np.ones(lr.num_rows, bool)))], HELD)
        emitted = _bools(pool, "_emitted")
        ready = np.zeros(pool.num_rows, bool)

        # Retention by the real watermark (also when draining): written packets
        # stay for two days + lateness as the rolling context of later ones.
        if wm > NEG_INF:
            keep = ~(emitted | ready) | (np_times(pool, T) + 2 * DAY_MS + L >= wm)
            pool = filt(pool, keep)
            if done.num_rows:
                done = filt(done, (done.column("day").to_numpy() + 3) * DAY_MS + L >= wm)
        state.tables = {"readings": pool, "days_done": done}
        state.join_watermark = max(wm_prev, wm)
        report = {"watermarks": {KIND: wm, "join": wm}, "late": {KIND: int(late.sum())},
                  "drained": ws.drain, "late_reason": LATE}
        return {k: _cat(v) for k, v in outs.items()}, state, report


def _cat(ts: list[pa.Table]) -> pa.Table | None:
    ts = [t for t in ts if t is not None and t.num_rows]
    return pa.concat_tables(ts) if ts else None


def sensor_source(stations: str, rules_file: str | None = None, out: str | None = None):
    """The batch job's specs, tables and rules; the station registry is staged
    once (content-addressed) next to the stream's state."""
    import hashlib
    import os
    import tempfile

    from pipelines.sensor_batch import sensor_job
    from pipelines.stream import StreamSource
    from transforms.beam.write import parquet_bytes
    from transforms.rules import load_overrides
    from transforms.sensor.rules import SENSOR_RULES
    from transforms.sensor.source import load_station_registry

    job = sensor_job(stations, rules_file)
    data = parquet_bytes(load_station_registry(stations)[0])
    base = os.path.join(out, "_stream", "sensor", "refs") if out else os.path.join(tempfile.gettempdir(), "hexsieve-refs")
    uri = os.path.join(base, f"stations-{hashlib.sha256(data).hexdigest()[:12]}.parquet")
    if not os.path.exists(uri):
        fileio.write_bytes(uri, data)
    consts = SENSOR_RULES.resolve(load_overrides(rules_file, "sensor"))
    return StreamSource(name="sensor", specs=job.specs, tables=job.tables, windower=SensorWindower(uri, consts),
                        rules=job.rules, rules_version=job.rules_version, extra_manifest=job.extra_manifest)
