"""A Beam coder for Arrow tables.

Without it, tables travel as pickles, and Beam's size sampler pickles the
first elements of every PCollection just to estimate their size — with a few
large tables per PCollection that is nearly every table. This coder encodes
with Arrow IPC (zero-copy decode) and estimates size from `nbytes` without
encoding. PCollections of tables declare `pa.Table` as their element type so
the registry picks it.
"""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa


class ArrowTableCoder(beam.coders.Coder):
    def encode(self, t: pa.Table) -> bytes:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, t.schema) as w:
            w.write_table(t)
        return sink.getvalue().to_pybytes()

    def decode(self, data: bytes) -> pa.Table:
        return pa.ipc.open_stream(pa.py_buffer(data)).read_all()

    def estimate_size(self, t: pa.Table) -> int:
        return int(t.nbytes)

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self):
        return pa.Table

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(type(self))


beam.coders.registry.register_coder(pa.Table, ArrowTableCoder)

TAGGED_TABLE = beam.typehints.Tuple[str, pa.Table]
