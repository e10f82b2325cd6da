"""Event time, watermarks and lateness for streaming, over Arrow tables.

Beam's own windowing assigns windows per element; hexsieve's elements are
Arrow tables of many records, and the Python DirectRunner never advances the
watermark of an unbounded file source (measured: event-time windows never
fire). So the streaming driver keeps the watermark itself, in the window
state committed with each micro-batch, and a source's `Windower` decides per
row, vectorized, what is ready, what waits, and what is late. `WindowStep` is
the one Beam step that applies a windower to a micro-batch.

Model (Beam's, applied to rows):
- per input kind, watermark = max event time seen − `max_delay`; event times
  beyond processing time do not advance it (a device with a clock in the
  future must not make every honest record late);
- a join's watermark is the minimum over the kinds it joins;
- a record is late when its event time is behind the join watermark at its
  arrival; it is *truly* late when behind by more than the allowed lateness,
  and then written at once with the reason `late` (verdict invalid) instead
  of waiting for a window that has already been emitted;
- draining (end of input) moves the watermark to +∞ for that micro-batch only:
  the persisted watermark stays the real one.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms import fileio
from transforms.beam.shuffle import read_ipc, write_ipc

NEG_INF = -(1 << 62)
POS_INF = 1 << 62
LATE = "late"


@dataclass
class WindowSettings:
    allowed_lateness_ms: int = 10 * 60 * 1000
    max_delay_ms: int = 5_000
    drain: bool = False
    now_ms: int = 0            # processing time of the micro-batch (caps the watermark)


@dataclass
class WindowState:
    """What survives between micro-batches: retained tables + watermarks."""
    tables: dict[str, pa.Table] = field(default_factory=dict)
    max_event: dict[str, int] = field(default_factory=dict)   # per input kind, ms
    join_watermark: int = NEG_INF                             # as of the last micro-batch

    def watermark(self, kind: str, max_delay_ms: int) -> int:
        m = self.max_event.get(kind)
        return NEG_INF if m is None else m - max_delay_ms

    def save(self, directory: str) -> None:
        for name, t in self.tables.items():
            write_ipc(fileio.join(directory, f"{name}.arrow"), t)
        fileio.write_bytes(fileio.join(directory, "window.json"), json.dumps(
            {"max_event": self.max_event, "join_watermark": self.join_watermark,
             "tables": sorted(self.tables)}, sort_keys=True).encode())

    @classmethod
    def load(cls, directory: str | None, schemas: dict[str, pa.Schema]) -> "WindowState":
        st = cls(tables={k: s.empty_table() for k, s in schemas.items()})
        if not directory or not os.path.exists(os.path.join(directory, "window.json")):
            return st
        doc = json.loads(fileio.read_bytes(fileio.join(directory, "window.json"), decompress=False))
        st.max_event = {k: int(v) for k, v in doc["max_event"].items()}
        st.join_watermark = int(doc["join_watermark"])
        for name in doc["tables"]:
            if name in schemas:
                st.tables[name] = read_ipc(fileio.join(directory, f"{name}.arrow")).cast(schemas[name])
        return st


def np_times(t: pa.Table, column: str) -> np.ndarray:
    return pc.fill_null(t.column(column), 0).to_numpy(zero_copy_only=False).astype(np.int64)


def observe(state: WindowState, kind: str, t: pa.Table, column: str, now_ms: int) -> None:
    """Advance a kind's max event time with a new table (capped at processing time)."""
    if t.num_rows == 0:
        return
    ts = np_times(t, column)
    ts = ts[ts <= now_ms]
    if len(ts):
        state.max_event[kind] = max(state.max_event.get(kind, NEG_INF), int(ts.max()))


def late_mask(t: pa.Table, column: str, watermark: int, allowed_lateness_ms: int) -> np.ndarray:
    if t.num_rows == 0 or watermark <= NEG_INF:
        return np.zeros(t.num_rows, dtype=bool)
    return np_times(t, column) < watermark - allowed_lateness_ms


def mark_late(t: pa.Table) -> pa.Table:
    """Prepend the `late` reason (first: it is why the other reasons may be
    incomplete) and make the verdict invalid."""
    if t.num_rows == 0:
        return t
    n = t.num_rows
    old = t.column("reasons").combine_chunks()
    old = pc.if_else(pc.is_null(old), pa.scalar([], old.type), old) if old.null_count else old
    offsets = old.offsets.to_numpy().astype(np.int64) - old.offsets[0].as_py()
    flat = pc.list_flatten(old)
    new_offsets = offsets + np.arange(n + 1)
    values = np.empty(len(flat) + n, dtype=object)
    is_late = np.zeros(len(values), dtype=bool)
    is_late[new_offsets[:-1]] = True
    values[is_late] = LATE
    values[~is_late] = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=object)
    reasons = pa.ListArray.from_arrays(pa.array(new_offsets, pa.int32()), pa.array(values, pa.string()))
    t = t.set_column(t.schema.get_field_index("reasons"), t.schema.field("reasons"),
                     reasons.cast(t.schema.field("reasons").type))
    return t.set_column(t.schema.get_field_index("verdict"), t.schema.field("verdict"),
                        pa.array(["invalid"] * t.num_rows, t.schema.field("verdict").type))


def row_ids(t: pa.Table) -> pa.Array:
    """One string per record identity (file, record number), for set membership."""
    if t.num_rows == 0:
        return pa.array([], pa.string())
    return pc.binary_join_element_wise(t.column("source_uri"), pc.cast(t.column("source_record"), pa.string()),
                                       "\x1f").combine_chunks()


def is_in(t: pa.Table, ids: pa.Array) -> np.ndarray:
    if t.num_rows == 0:
        return np.zeros(0, dtype=bool)
    if len(ids) == 0:
        return np.zeros(t.num_rows, dtype=bool)
    return pc.fill_null(pc.is_in(row_ids(t), value_set=ids), False).to_numpy(zero_copy_only=False).astype(bool)


def filt(t: pa.Table, mask: np.ndarray) -> pa.Table:
    return t.filter(pa.array(mask, pa.bool_())) if t.num_rows else t


def concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    ts = [t.select(schema.names).cast(schema) for t in tables if t.num_rows]
    return pa.concat_tables(ts) if ts else schema.empty_table()


def per_source(tables: list[pa.Table]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in tables:
        if t.num_rows == 0:
            continue
        g = t.group_by("source_uri").aggregate([("source_uri", "count")])
        for u, c in zip(g.column("source_uri").to_pylist(), g.column("source_uri_count").to_pylist()):
            out[u] = out.get(u, 0) + c
    return out


class Windower:
    """A source's streaming logic. `step` is pure: (state, new tables) →
    (tagged output tables, new state, report); it calls the source's batch
    verification functions, so verdicts cannot drift from batch."""
    kinds: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    state_schemas: dict[str, pa.Schema] = {}

    def carried(self, state: WindowState) -> dict[str, int]:
        """Rows per source file held in state and not yet written anywhere."""
        raise NotImplementedError

    def step(self, state: WindowState, new: dict[str, pa.Table], ws: WindowSettings
             ) -> tuple[dict[str, pa.Table], WindowState, dict]:
        raise NotImplementedError


class WindowStep(beam.DoFn):
    """[(kind, table), …] of one micro-batch → (table, (part, rows)) per
    output, ('window', report). Loads the committed window state, writes the
    next one into the micro-batch's staging (committed with its outputs)."""

    def __init__(self, windower: Windower, state_in: str | None, state_out: str, part_id: str,
                 ws: WindowSettings):
        self.windower, self.state_in, self.state_out = windower, state_in, state_out
        self.part_id, self.ws = part_id, ws

    def process(self, items):
        w = self.windower
        state = WindowState.load(self.state_in, w.state_schemas)
        new = {}
        for k in w.kinds:
            ts = [t for kind, t in items if kind == k and t.num_rows]
            new[k] = pa.concat_tables(ts, promote_options="default") if ts else None
        carried_in = w.carried(state)
        outs, state, report = w.step(state, new, self.ws)
        state.save(self.state_out)
        report.update({"receipt": "window", "uri": "window", "path": "~window", "carried_in": carried_in,
                       "carried_out": w.carried(state)})
        for table in w.outputs:
            t = outs.get(table)
            if t is not None and t.num_rows:
                yield table, (self.part_id, t)
        yield "window", report
