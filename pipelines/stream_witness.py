"""Streaming windows of the witness source, over the batch verification functions.

Why rows can be emitted long before a "window" closes, and still match batch:
- a beacon's verdict depends only on the beacons of its gateway in the same
  6-hour bucket received no later than itself (B05 irregular_interval), so a
  beacon is verified once the beacon watermark passes its received time, with
  the earlier beacons of its bucket (kept for the bucket + allowed lateness)
  as context;
- a witness's verdict depends on its nearest beacon within the join window
  and on the earlier witnesses of that beacon (first witness, duplicates,
  selection rank), so it is final once the join watermark passes its
  received time + its distance to the beacon found (or + the whole join
  window when none is found yet: `beacon_not_found` must be certain);
- a beacon *row* carries `witness_count`, so it waits for its whole join
  window (received + join_window_ms) to close.
Everything emitted is computed by `verify_beacons` / `verify_witnesses` on
the union of retained and new rows of the payloads involved: the same calls
batch makes, on a superset of the rows that matter.
"""
from __future__ import annotations

import io
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.provenance import SOURCE_FIELDS
from schemas.witness import RAW_BEACON, RAW_WITNESS
from transforms import fileio
from transforms.beam.windows import (LATE, NEG_INF, POS_INF, WindowSettings, WindowState, Windower, concat,
                                     filt, is_in, late_mask, mark_late, np_times, observe, per_source, row_ids)
from transforms.rules import Constants
from transforms.witness.verify import empty_verified_beacons, verify_beacons, verify_witnesses

RAW_B = pa.schema(list(RAW_BEACON) + list(SOURCE_FIELDS))
RAW_W = pa.schema(list(RAW_WITNESS) + list(SOURCE_FIELDS))
VB = empty_verified_beacons().schema.append(pa.field("_emitted", pa.bool_()))
T = "received_timestamp"

_REFS: dict[str, pa.Table] = {}


def _ref(uri: str | None) -> pa.Table | None:
    """Reference tables are staged once per stream; each micro-batch's DoFn
    reuses the parsed copy (a registry can be large)."""
    if not uri:
        return None
    if uri not in _REFS:
        _REFS[uri] = pq.read_table(io.BytesIO(fileio.read_bytes(uri, decompress=False)))
    return _REFS[uri]


class WitnessWindower(Windower):
    kinds = ("beacon", "witness")
    outputs = ("witness", "beacon")
    state_schemas = {"b_pending": RAW_B, "b_history": RAW_B, "vbeacons": VB, "w_pending": RAW_W, "w_ctx": RAW_W}

    def __init__(self, refs: dict[str, str | None], cb: Constants, cw: Constants):
        self.refs, self.cb, self.cw = refs, cb, cw

    def carried(self, state: WindowState) -> dict[str, int]:
        vb = state.tables["vbeacons"]
        unemitted = filt(vb, ~pc.fill_null(vb.column("_emitted"), False).to_numpy(zero_copy_only=False).astype(bool)) \
            if vb.num_rows else vb
        return per_source([state.tables["b_pending"], unemitted, state.tables["w_pending"]])

    def step(self, state, new, ws: WindowSettings):
        registry, deny, entropy = _ref(self.refs["registry"]), _ref(self.refs["deny"]), _ref(self.refs["entropy"])
        J = int(self.cw["join_window_ms"])
        I = int(self.cb["beacon_interval_ms"])
        L = ws.allowed_lateness_ms
        now = ws.now_ms
        new_b = concat([new["beacon"]], RAW_B) if new.get("beacon") is not None else RAW_B.empty_table()
        new_w = concat([new["witness"]], RAW_W) if new.get("witness") is not None else RAW_W.empty_table()
        wj_prev = state.join_watermark
        # Lateness is judged against the join watermark *before* this batch.
        late_b = late_mask(new_b, T, wj_prev, L)
        late_w = late_mask(new_w, T, wj_prev, L)
        observe(state, "beacon", new_b, T, now)
        observe(state, "witness", new_w, T, now)
        wb = state.watermark("beacon", ws.max_delay_ms)
        wj = min(wb, state.watermark("witness", ws.max_delay_ms))
        wb_eff, wj_eff = (POS_INF, POS_INF) if ws.drain else (wb, wj)
        tb = state.tables

        # --- beacons: verify those the beacon watermark has passed (+ late ones now)
        pool_b = concat([tb["b_pending"], filt(new_b, ~late_b)], RAW_B)
        ready = np_times(pool_b, T) <= wb_eff
        ready_b, pend_b = filt(pool_b, ready), filt(pool_b, ~ready)
        lb = filt(new_b, late_b)
        todo = concat([ready_b, lb], RAW_B)
        verified = VB.remove(VB.get_field_index("_emitted")).empty_table()
        if todo.num_rows:
            hist = tb["b_history"]
            if hist.num_rows:
                hist = hist.filter(pc.is_in(hist.column("pub_key"), value_set=todo.column("pub_key").combine_chunks()))
            both = concat([hist, todo], RAW_B)
            ctx_flag = np.concatenate([np.ones(hist.num_rows, bool), np.zeros(todo.num_rows, bool)])
            both = both.append_column("_ctx", pa.array(ctx_flag))
            out = verify_beacons(both, registry, deny, entropy, self.cb, now)
            out = filt(out, ~out.column("_ctx").to_numpy(zero_copy_only=False).astype(bool)).drop_columns(["_ctx"])
            verified = out
        late_b_ids = row_ids(lb)
        hist = concat([tb["b_history"], todo], RAW_B)

        # --- witness join over the payloads that can emit something now
        pool_w = concat([tb["w_pending"], filt(new_w, ~late_w)], RAW_W)
        lw = filt(new_w, late_w)
        vb_old = tb["vbeacons"]
        vb_new = verified.append_column("_emitted", pa.array(np.zeros(verified.num_rows, bool)))
        vb_all = concat([vb_old, vb_new], VB)
        emitted = pc.fill_null(vb_all.column("_emitted"), False).to_numpy(zero_copy_only=False).astype(bool)
        payloads = pa.concat_arrays([c.combine_chunks() for c in (
            pool_w.column("data"), lw.column("data"), filt(vb_all, ~emitted).column("data"))])
        w_ctx = tb["w_ctx"]
        rel_b = filt(vb_all, pc.is_in(vb_all.column("data"), value_set=payloads).to_numpy(zero_copy_only=False)
                     .astype(bool)) if vb_all.num_rows else vb_all
        all_w = concat([w_ctx, pool_w, lw], RAW_W)
        rel_w = filt(all_w, pc.is_in(all_w.column("data"), value_set=payloads).to_numpy(zero_copy_only=False)
                     .astype(bool)) if all_w.num_rows else all_w
        wt, bt = verify_witnesses(rel_b.drop_columns(["_emitted"]), rel_w, registry, deny, self.cw, now)

        # witness rows: ready pending ones and truly late ones
        in_pool = is_in(wt, row_ids(pool_w))
        in_late = is_in(wt, row_ids(lw))
        recv = np_times(wt, T)
        brecv = wt.column("beacon_received_timestamp")
        has_b = pc.is_valid(brecv).to_numpy(zero_copy_only=False).astype(bool) if wt.num_rows else np.zeros(0, bool)
        d = np.where(has_b, np.abs(recv - np_times(wt, "beacon_received_timestamp")), J)
        w_ready = in_pool & (recv + d <= wj_eff)
        w_out = concat([filt(wt, w_ready), mark_late(filt(wt, in_late))], wt.schema) if wt.num_rows else wt
        w_done_ids = row_ids(filt(wt, w_ready | in_late))
        new_ctx = concat([w_ctx, filt(pool_w, is_in(pool_w, w_done_ids)), lw], RAW_W)
        w_pend = filt(pool_w, ~is_in(pool_w, w_done_ids))

        # beacon rows: when their join window has closed (witness_count is final), late ones at once
        b_unemitted = ~is_in(bt, row_ids(filt(vb_all, emitted)))
        b_late = is_in(bt, late_b_ids)
        b_ready = b_unemitted & ~b_late & (np_times(bt, T) + J <= wj_eff)
        b_out = concat([filt(bt, b_ready), mark_late(filt(bt, b_late))], bt.schema) if bt.num_rows else bt
        done_b_ids = row_ids(filt(bt, b_ready | b_late))
        vb_all = vb_all.set_column(vb_all.schema.get_field_index("_emitted"), "_emitted",
                                   pa.array(emitted | is_in(vb_all, done_b_ids)))

        # --- retention (by the real watermarks, also when draining)
        keep = lambda t, horizon: filt(t, np_times(t, T) + horizon >= wj) if wj > NEG_INF and t.num_rows else t  # noqa: E731
        em = pc.fill_null(vb_all.column("_emitted"), False).to_numpy(zero_copy_only=False).astype(bool)
        vb_keep = ~em | (np_times(vb_all, T) + 2 * J + L >= wj) if wb > NEG_INF and wj > NEG_INF else np.ones(vb_all.num_rows, bool)
        if wb > NEG_INF and hist.num_rows:
            hist = filt(hist, (np_times(hist, T) // I + 1) * I + L >= wb)
        state.tables = {"b_pending": pend_b, "b_history": hist, "vbeacons": filt(vb_all, vb_keep),
                        "w_pending": w_pend, "w_ctx": keep(new_ctx, 2 * J + L)}
        state.join_watermark = max(wj_prev, wj)
        report = {"watermarks": {"beacon": wb, "witness": state.watermark("witness", ws.max_delay_ms), "join": wj},
                  "late": {"beacon": int(b_late.sum()), "witness": int(in_late.sum())},
                  "drained": ws.drain, "late_reason": LATE}
        return {"witness": w_out, "beacon": b_out}, state, report


def witness_source(out: str, registry: str, denylist: str | None = None, entropy: str | None = None,
                   rules_file: str | None = None):
    """The batch job's specs, tables and rules, with the reference tables
    staged once under OUT/_stream/witness/refs for the window step."""
    from pipelines.stream import StreamSource
    from pipelines.stream_commit import stream_dir
    from pipelines.witness_batch import witness_job
    from transforms.beam.write import parquet_bytes
    from transforms.rules import load_overrides
    from transforms.witness import registry as reg
    from transforms.witness.rules import BEACON_RULES, WITNESS_RULES

    job = witness_job(registry, denylist, entropy, rules_file)
    tables = {"registry": reg.load_registry(registry)[0], "deny": reg.load_denylist(denylist),
              "entropy": reg.load_entropy(entropy)}
    refs = {}
    for name, t in tables.items():
        if t is None:
            refs[name] = None
            continue
        data = parquet_bytes(t)
        import hashlib
        uri = os.path.join(stream_dir(out, "witness"), "refs", f"{name}-{hashlib.sha256(data).hexdigest()[:12]}.parquet")
        if not os.path.exists(uri):
            fileio.write_bytes(uri, data)
        refs[name] = uri
    cb = BEACON_RULES.resolve(load_overrides(rules_file, "beacon"))
    cw = WITNESS_RULES.resolve(load_overrides(rules_file, "witness"))
    return StreamSource(name="witness", specs=job.specs, tables=job.tables,
                        windower=WitnessWindower(refs, cb, cw), rules=job.rules,
                        rules_version=job.rules_version, extra_manifest=job.extra_manifest)
