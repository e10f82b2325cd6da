"""Deterministic, vectorized bucketing of string keys.

Python's `hash()` is salted per process, so it cannot route rows to buckets
consistently across workers; this hash is computed from the UTF-8 bytes with
numpy and is identical on every machine and run.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_P = np.uint64(1099511628211)
_POW = np.cumprod(np.full(4096, _P, dtype=np.uint64), dtype=np.uint64)


def hash_strings(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit polynomial hash of each string (first 4096 bytes), nulls → 0."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    col = pc.fill_null(col.cast(pa.large_string()), "")
    n = len(col)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    offs = np.frombuffer(col.buffers()[1], dtype=np.int64)[col.offset:col.offset + n + 1]
    data = np.frombuffer(col.buffers()[2], dtype=np.uint8) if col.buffers()[2] is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offs)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(n, dtype=np.uint64)
    starts = offs[:-1]
    # Position of each byte within its string, to weight it.
    pos = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    byte_idx = np.repeat(starts, lengths) + pos
    vals = data[byte_idx].astype(np.uint64) * _POW[np.minimum(pos, 4095)]
    nonempty = lengths > 0
    h = np.zeros(n, dtype=np.uint64)
    seg_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    h[nonempty] = np.add.reduceat(vals, seg_starts[nonempty])
    h ^= h >> np.uint64(31)
    h *= np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(29)
    return h


def buckets(col: pa.Array | pa.ChunkedArray, n_buckets: int) -> np.ndarray:
    return (hash_strings(col) % np.uint64(max(1, n_buckets))).astype(np.int64)
