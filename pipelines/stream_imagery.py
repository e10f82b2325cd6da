"""Streaming windows of the imagery source, over the batch verification function.

Why a frame waits for its *sequence* to close, not for a fixed window: most
rules look back (frame rules, duplicates, implied speed and teleport against
the previous passing frames), but two look forward inside a sequence.
`zigzag` is centred on the frame, and `stationary` judges the bounding box of
the whole sequence. A sequence ends at a gap longer than `split_gap_ms` (or a
jump or a new sequence id), and it can last any length of time. So a device's
frames are written once a later sequence has started, or once the watermark
passes its last frame + `split_gap_ms`. After that, no frame that is not late
can join their sequence.

Each step verifies, with `verify_frames`, all retained frames of the devices
that can emit something, which is the same call batch makes per device
bucket. The state keeps every frame not yet written, plus written frames for
a day plus the allowed lateness, plus always the device's last `TAIL` frames.
That tail lets the sequence checks of a device that was quiet for longer than
the retention still see its predecessors (teleport looks back
`teleport_window` steps).
"""
from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.provenance import SOURCE_FIELDS
from transforms import fileio
from transforms.beam.windows import (LATE, NEG_INF, POS_INF, WindowSettings, WindowState, Windower, concat,
                                     filt, is_in, late_mask, mark_late, np_times, observe, per_source, row_ids)
from transforms.imagery.source import PARSE_FRAME
from transforms.imagery.verify import verify_frames
from transforms.rules import Constants

RAW = pa.schema(list(PARSE_FRAME) + list(SOURCE_FIELDS))
HELD = RAW.append(pa.field("_emitted", pa.bool_()))
T = "captured_at"
KIND = "frame"
DAY_MS = 86_400_000

_REFS: dict[str, pa.Table] = {}


def _ref(uri: str | None) -> pa.Table | None:
    if not uri:
        return None
    if uri not in _REFS:
        _REFS[uri] = pq.read_table(io.BytesIO(fileio.read_bytes(uri, decompress=False)))
    return _REFS[uri]


def _bools(t: pa.Table, col: str) -> np.ndarray:
    return pc.fill_null(t.column(col), False).to_numpy(zero_copy_only=False).astype(bool)


def _codes(t: pa.Table, col: str) -> np.ndarray:
    if t.num_rows == 0:
        return np.zeros(0, np.int64)
    return pc.fill_null(pc.dictionary_encode(t.column(col).combine_chunks()).indices, -1).to_numpy(
        zero_copy_only=False).astype(np.int64)


def _device_mask(t: pa.Table, ids: pa.Array) -> np.ndarray:
    if t.num_rows == 0 or len(ids) == 0:
        return np.zeros(t.num_rows, bool)
    return pc.fill_null(pc.is_in(t.column("device_id"), value_set=ids, skip_nulls=False), False).to_numpy(
        zero_copy_only=False).astype(bool)


def _per_group(code: np.ndarray, values: np.ndarray, how) -> np.ndarray:
    """how-reduce of values per group code, broadcast back to rows."""
    if len(code) == 0:
        return values
    n = int(code.max()) + 2
    c = code + 1  # null device (-1) is a group of its own
    init = np.iinfo(np.int64).min if how is np.maximum else np.iinfo(np.int64).max
    acc = np.full(n, init, np.int64)
    how.at(acc, c, values.astype(np.int64))
    return acc[c]


def _tail(t: pa.Table, k: int) -> np.ndarray:
    """True on each device's last k frames by event time."""
    if t.num_rows == 0:
        return np.zeros(0, bool)
    code = _codes(t, "device_id")
    ts = np_times(t, T)
    order = np.lexsort((-ts, code))
    c = code[order]
    first = np.ones(len(c), bool)
    first[1:] = c[1:] != c[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(len(c)), 0))
    rank = np.arange(len(c)) - start
    out = np.zeros(t.num_rows, bool)
    out[order] = rank < k
    return out


class ImageryWindower(Windower):
    kinds = (KIND,)
    outputs = ("imagery",)
    state_schemas = {"frames": HELD}

    def __init__(self, devices_uri: str | None, cf: Constants, cs: Constants):
        self.devices_uri, self.cf, self.cs = devices_uri, cf, cs

    def carried(self, state: WindowState) -> dict[str, int]:
        f = state.tables["frames"]
        return per_source([filt(f, ~_bools(f, "_emitted"))]) if f.num_rows else {}

    def step(self, state, new, ws: WindowSettings):
        devices = _ref(self.devices_uri)
        now, L = ws.now_ms, ws.allowed_lateness_ms
        gap = int(self.cs["split_gap_ms"])
        new_f = concat([new[KIND]], RAW) if new.get(KIND) is not None else RAW.empty_table()
        wm_prev = state.join_watermark
        late = late_mask(new_f, T, wm_prev, L)
        observe(state, KIND, new_f, T, now)
        wm = state.watermark(KIND, ws.max_delay_ms)
        wm_eff = POS_INF if ws.drain else wm
        fresh, lf = filt(new_f, ~late), filt(new_f, late)
        pool = concat([state.tables["frames"],
                       fresh.append_column("_emitted", pa.array(np.zeros(fresh.num_rows, bool)))], HELD)
        emitted = _bools(pool, "_emitted")
        cand = ~emitted & (np_times(pool, T) <= wm_eff)
        touched = pc.unique(pa.concat_arrays([filt(pool, cand).column("device_id").combine_chunks(),
                                              lf.column("device_id").combine_chunks()]))
        out = None
        done = np.zeros(pool.num_rows, bool)
        if len(touched):
            hist = filt(pool, _device_mask(pool, touched))
            v = verify_frames(concat([hist.drop_columns(["_emitted"]), lf], RAW), devices, self.cf, self.cs, now)
            # Final: the frame's sequence is closed (a later one started, or the device is quiet for > gap).
            vt = np_times(v, T)
            code = _codes(v, "device_id")
            seq = v.column("sequence_index").to_numpy(zero_copy_only=False).astype(np.int64)
            max_seq = _per_group(code, seq, np.maximum)
            open_start = _per_group(code, np.where(seq == max_seq, vt, np.iinfo(np.int64).max), np.minimum)
            last = _per_group(code, vt, np.maximum)
            final = (vt <= wm_eff) & ((vt < open_start) | (last + gap < wm_eff))
            unemitted_ids = row_ids(filt(pool, ~emitted))
            ready_v = final & is_in(v, unemitted_ids)
            out = concat([filt(v, ready_v), mark_late(filt(v, is_in(v, row_ids(lf))))], v.schema)
            done = is_in(pool, row_ids(filt(v, ready_v)))
        pool = pool.set_column(pool.schema.get_field_index("_emitted"), "_emitted", pa.array(emitted | done))
        # Late frames were written at once; they stay as their device's history.
        pool = concat([pool, lf.append_column("_emitted", pa.array(np.ones(lf.num_rows, bool)))], HELD)
        if wm > NEG_INF and pool.num_rows:
            em = _bools(pool, "_emitted")
            tail = _tail(pool, int(self.cs["teleport_window"]) + 3)
            pool = filt(pool, ~em | tail | (np_times(pool, T) + DAY_MS + L >= wm))
        state.tables = {"frames": pool}
        state.join_watermark = max(wm_prev, wm)
        report = {"watermarks": {KIND: wm, "join": wm}, "late": {KIND: int(late.sum())},
                  "drained": ws.drain, "late_reason": LATE}
        return {"imagery": out if out is not None and out.num_rows else None}, state, report


def imagery_source(devices: str | None = None, rules_file: str | None = None, out: str | None = None):
    """The batch job's specs, tables and rules; the device registry (optional)
    is staged once, content-addressed, next to the stream's state."""
    import hashlib
    import os
    import tempfile

    from pipelines.imagery_batch import imagery_job, load_devices
    from pipelines.stream import StreamSource
    from transforms.beam.write import parquet_bytes
    from transforms.imagery.rules import FRAME_RULES, SEQUENCE_RULES
    from transforms.rules import load_overrides

    job = imagery_job(devices, rules_file)
    uri = None
    t = load_devices(devices)[0]
    if t is not None:
        data = parquet_bytes(t)
        base = os.path.join(out, "_stream", "imagery", "refs") if out else os.path.join(tempfile.gettempdir(),
                                                                                        "hexsieve-refs")
        uri = os.path.join(base, f"devices-{hashlib.sha256(data).hexdigest()[:12]}.parquet")
        if not os.path.exists(uri):
            fileio.write_bytes(uri, data)
    cf = FRAME_RULES.resolve(load_overrides(rules_file, FRAME_RULES.name))
    cs = SEQUENCE_RULES.resolve(load_overrides(rules_file, SEQUENCE_RULES.name))
    return StreamSource(name="imagery", specs=job.specs, tables=job.tables,
                        windower=ImageryWindower(uri, cf, cs), rules=job.rules,
                        rules_version=job.rules_version, extra_manifest=job.extra_manifest)
